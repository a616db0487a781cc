# Stand-in for mcr.microsoft.com/dotnet/aspnet:10.0-noble (tests/image/run.sh). Dockerfile.cuda takes only
# /usr/share/dotnet from it: the dotnet host with the .NET and ASP.NET Core shared runtimes of this machine's SDK.
FROM scratch
COPY dotnet/ /usr/share/dotnet/
LABEL io.dotnet-inference.image-test=standin
