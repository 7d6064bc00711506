namespace Servables;

/// <summary>Returned by <c>AddServables</c>; backends and storage sources hang their registrations on it.</summary>
public interface IServablesBuilder
{
    /// <summary>The service collection Servables is registered in.</summary>
    Microsoft.Extensions.DependencyInjection.IServiceCollection Services { get; }
}
