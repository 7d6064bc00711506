using Microsoft.Extensions.DependencyInjection;

namespace Servables;

/// <summary>The <see cref="IServablesBuilder"/> <c>AddServables</c> returns.</summary>
internal sealed class ServablesBuilder(IServiceCollection services) : IServablesBuilder
{
    public IServiceCollection Services { get; } = services;
}
