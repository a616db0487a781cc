# Stand-in for mcr.microsoft.com/dotnet/sdk:10.0-noble (tests/image/run.sh): the Debian stand-in base, ICU, and this
# machine's .NET SDK and CA bundle. The bundle lets `dotnet restore` in the image build reach NuGet through this
# machine's TLS-inspecting proxy; only the build stage sees it, never the final image.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends "$(apt-cache pkgnames libicu | grep -xE 'libicu[0-9]+' | sort -V | tail -n 1)" \
 && rm -rf /var/lib/apt/lists/*
COPY dotnet/ /usr/share/dotnet/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
# As the real SDK image and this machine do: no first-run output, no telemetry; NuGet's revocation checks offline,
# since the proxy's certificate has no reachable revocation list.
ENV DOTNET_NOLOGO=1 \
    DOTNET_CLI_TELEMETRY_OPTOUT=1 \
    NUGET_CERT_REVOCATION_MODE=offline
LABEL io.dotnet-inference.image-test=standin
