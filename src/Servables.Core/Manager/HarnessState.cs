namespace Servables;

/// <summary>The manager's own view of one version's lifecycle (finer than <see cref="ServableManagerState"/>).</summary>
/// <remarks>
/// The legal moves, enforced by <see cref="LoaderHarness.TransitionState"/>:
/// <code>
/// New ──────► Loading ──────► Available ──► Quiescing ──► Unloading ──► Unloaded
///  │            │  │  └──────────────────────► Quiescing   (loaded while the manager stops)
///  │            │  └► Unloaded                (load cancelled: un-aspired or stopping)
///  └► Error ◄───┘                             (source error, estimate failure, refusal, failed or timed-out load)
/// </code>
/// Error and Unloaded are final. A New or Error harness can also leave the manager without a
/// move (un-aspired, or the manager stops); it then never changes again.
/// </remarks>
internal enum HarnessState
{
    /// <summary>Aspired; not loading yet.</summary>
    New,

    /// <summary>A load worker is loading it, or waiting to retry.</summary>
    Loading,

    /// <summary>Loaded and in the serving map.</summary>
    Available,

    /// <summary>Out of the serving map; waiting for its last lease to end.</summary>
    Quiescing,

    /// <summary>Its last lease ended; an unload worker is unloading it.</summary>
    Unloading,

    /// <summary>Unloaded (or its load was cancelled); removed from the manager.</summary>
    Unloaded,

    /// <summary>Failed for good; stays while aspired so that it is not loaded again.</summary>
    Error,
}
