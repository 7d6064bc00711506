namespace Servables.Testing;

/// <summary>A throw-away console app outside the repository that takes the packed packages from a local folder, as <c>dotnet add package</c> would.</summary>
public static class ConsumerApp
{
    /// <summary>Writes the app's <c>nuget.config</c> (the local <paramref name="feed"/> added; every other source is the machine's own configuration) and its project, with <paramref name="packageReferences"/> in it.</summary>
    /// <param name="app">The app's folder; created.</param>
    /// <param name="feed">The folder the packages were packed into.</param>
    /// <param name="packageReferences">The project's <c>PackageReference</c> items.</param>
    /// <param name="properties">More properties of the project, if any.</param>
    /// <param name="sdk">The project's SDK: <c>Microsoft.NET.Sdk</c>, or <c>Microsoft.NET.Sdk.Web</c> for an ASP.NET Core app.</param>
    /// <returns><paramref name="app"/>.</returns>
    public static string Write(string app, string feed, string packageReferences, string properties = "", string sdk = "Microsoft.NET.Sdk")
    {
        Directory.CreateDirectory(app);
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="servables-consumer-test" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "Consumer.csproj"), $"""
            <Project Sdk="{sdk}">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <RuntimeIdentifier>linux-x64</RuntimeIdentifier>
                <SelfContained>false</SelfContained>
                <NoWarn>$(NoWarn);NU1603</NoWarn>
            {properties}
              </PropertyGroup>
              <ItemGroup>
            {packageReferences}
              </ItemGroup>
            </Project>
            """);
        return app;
    }
}
