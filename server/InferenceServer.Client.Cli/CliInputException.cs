namespace InferenceServer.Client.Cli;

/// <summary>Bad input from the user (a missing file, an unreadable .npy, a wrong datatype): exit code 2 with the message.</summary>
internal sealed class CliInputException(string message) : Exception(message);
