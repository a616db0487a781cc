// Writes the sample model repository:
//   dotnet run --project server/InferenceServer.ModelBuilder -- [--out DIR]
// DIR defaults to ./models. Prints one line per file written.

using InferenceServer.ModelBuilder;

string outDir = "models";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out" or "-o" when i + 1 < args.Length:
            outDir = args[++i];
            break;
        case "--help" or "-h":
            Console.WriteLine("usage: InferenceServer.ModelBuilder [--out DIR]   (writes the sample model repository; default DIR: models)");
            return 0;
        default:
            Console.Error.WriteLine($"unknown or incomplete argument '{args[i]}'; usage: InferenceServer.ModelBuilder [--out DIR]");
            return 2;
    }
}

foreach (string path in SampleModels.WriteAll(outDir))
{
    Console.WriteLine(path);
}

return 0;
