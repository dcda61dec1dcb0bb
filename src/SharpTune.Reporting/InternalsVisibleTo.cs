using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("SharpTune.Tests")]
