namespace Servables;

/// <summary>What the manager knows of one version at one moment: a copy, safe to read anywhere.</summary>
internal sealed record VersionReport(ServableId Id, HarnessState State, bool IsAspired, Exception? Error);
