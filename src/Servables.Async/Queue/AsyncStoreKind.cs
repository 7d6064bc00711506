namespace Servables.Async;

/// <summary>Which result store an API uses.</summary>
public enum AsyncStoreKind
{
    /// <summary>In process memory: bounded, fast, lost on restart. The default.</summary>
    InMemory,

    /// <summary>A SQLite file: requests survive a crash and are run again on restart (at-least-once).</summary>
    Sqlite,
}
