namespace SharpTune.Hub;

/// <summary>A progress report of a snapshot download. Reports come from several download tasks at once, so an
/// <see cref="IProgress{T}"/> given to <see cref="HubClient"/> must be thread-safe (<see cref="Progress{T}"/> is).</summary>
/// <param name="File">Path inside the repository of the file this report is about.</param>
/// <param name="FileBytesDone">Bytes of <paramref name="File"/> present so far.</param>
/// <param name="FileBytesTotal">Size of <paramref name="File"/>.</param>
/// <param name="BytesDone">Bytes present so far over all selected files, cached ones included.</param>
/// <param name="BytesTotal">Size of all selected files.</param>
/// <param name="FilesDone">Files complete in the snapshot folder.</param>
/// <param name="FilesTotal">Number of selected files.</param>
public sealed record HubProgress(
    string File, long FileBytesDone, long FileBytesTotal, long BytesDone, long BytesTotal, int FilesDone, int FilesTotal);
