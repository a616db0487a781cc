return await InferenceServer.Client.Cli.InferCommandLine.RunAsync(args);
