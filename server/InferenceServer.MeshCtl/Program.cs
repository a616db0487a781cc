return await InferenceServer.MeshCtl.MeshCommandLine.RunAsync(args);
