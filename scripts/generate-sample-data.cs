#:project ../src/SharpTune/SharpTune.csproj
// Rewrites the bundled sample dataset from SampleDataGenerator. Run from the repository root:
//   dotnet run scripts/generate-sample-data.cs [output-folder]
// A test (SampleDataTests) fails when data/medical-calculations differs from what the generator writes.
string folder = Path.GetFullPath(args.Length > 0 ? args[0] : "data/medical-calculations");
SharpTune.Data.SampleDataGenerator.WriteFiles(folder);
Console.WriteLine($"wrote {folder}");
