namespace Servables;

/// <summary>How a <see cref="ServableRequest"/> picks a version among the available ones.</summary>
public enum ServableRequestKind
{
    /// <summary>The available version with the largest number.</summary>
    Latest,

    /// <summary>The available version with the smallest number.</summary>
    Earliest,

    /// <summary>Exactly the version named by <see cref="ServableRequest.Version"/>.</summary>
    Specific,

    /// <summary>The version a label (such as "stable" or "canary") points to.</summary>
    Labeled,
}
