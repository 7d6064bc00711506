using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Servables;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Servables.Core in a service collection.</summary>
public static class ServablesServiceCollectionExtensions
{
    /// <summary>
    /// Registers the <see cref="AspiredVersionsManager"/> (also as <see cref="IServableManager"/>), its
    /// <see cref="ServableStateMonitor"/>, and a hosted service that starts them and the storage sources
    /// registered on the returned builder. Options are validated when the host starts. Calling it again
    /// adds only the extra configuration.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the manager; null for the defaults.</param>
    /// <returns>A builder for storage-path servables and backends.</returns>
    public static IServablesBuilder AddServables(this IServiceCollection services, Action<AspiredVersionsManagerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        OptionsBuilder<AspiredVersionsManagerOptions> manager = services.AddOptions<AspiredVersionsManagerOptions>();
        if (configure is not null)
        {
            manager.Configure(configure);
        }

        manager.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AspiredVersionsManagerOptions>, ListedOptionsValidator<AspiredVersionsManagerOptions>>(
            _ => new ListedOptionsValidator<AspiredVersionsManagerOptions>(o => o.Validate())));
        services.AddOptions<ServableStateMonitorOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ServableStateMonitorOptions>, ListedOptionsValidator<ServableStateMonitorOptions>>(
            _ => new ListedOptionsValidator<ServableStateMonitorOptions>(o => o.Validate())));
        services.AddOptions<ServableStorageOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ServableStorageOptions>, ListedOptionsValidator<ServableStorageOptions>>(
            _ => new ListedOptionsValidator<ServableStorageOptions>(ValidateStorage)));

        services.TryAddSingleton<ServablesRuntime>();
        services.TryAddSingleton(sp => sp.GetRequiredService<ServablesRuntime>().Manager);
        services.TryAddSingleton<IServableManager>(sp => sp.GetRequiredService<ServablesRuntime>().Manager);
        services.TryAddSingleton(sp => sp.GetRequiredService<ServablesRuntime>().Monitor);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ServablesHostedService>());
        return new ServablesBuilder(services);
    }

    /// <summary>
    /// Serves the servable <paramref name="name"/> from the numeric version folders under
    /// <paramref name="basePath"/>, hot-swapping as folders appear, with loaders from <paramref name="createLoader"/>.
    /// </summary>
    /// <param name="builder">The builder from <c>AddServables</c>.</param>
    /// <param name="name">The servable's name; unique.</param>
    /// <param name="basePath">The folder that holds the version folders.</param>
    /// <param name="createLoader">Creates the loader of one version from its folder; cheap (the loader's load does the work).</param>
    /// <param name="versionPolicy">Which versions to serve; null for the latest one.</param>
    public static IServablesBuilder AddStoragePathServable(
        this IServablesBuilder builder,
        string name,
        string basePath,
        Func<IServiceProvider, ServableId, string, Loader> createLoader,
        ServableVersionPolicy? versionPolicy = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(basePath);
        ArgumentNullException.ThrowIfNull(createLoader);
        var servable = new StoragePathServable(name, basePath) { VersionPolicy = versionPolicy ?? ServableVersionPolicy.Latest() };
        builder.Services.Configure<ServableStorageOptions>(o => o.Registrations.Add(new StoragePathRegistration(servable, createLoader)));
        return builder;
    }

    /// <summary>Configures how registered base paths are polled.</summary>
    public static IServablesBuilder ConfigureStorage(this IServablesBuilder builder, Action<ServableStorageOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.Configure(configure);
        return builder;
    }

    /// <summary>The attributes on <see cref="ServableStorageOptions"/>, then the registered servables' rules (those of <see cref="FileSystemStoragePathSourceOptions.Validate"/>).</summary>
    private static List<string> ValidateStorage(ServableStorageOptions o)
    {
        List<string> errors = ServableStorageOptionsValidator.Instance.Validate(null, o).Problems();
        var source = new FileSystemStoragePathSourceOptions();
        foreach (StoragePathRegistration r in o.Registrations)
        {
            source.Servables.Add(r.Servable);
        }

        errors.AddRange(source.Validate());
        return errors;
    }
}
