namespace Servables;

/// <summary>The kinds of <see cref="ServableVersionPolicy"/>.</summary>
public enum ServableVersionPolicyKind
{
    /// <summary>The newest N versions.</summary>
    Latest,

    /// <summary>Every version.</summary>
    All,

    /// <summary>A fixed set of versions.</summary>
    Specific,
}
