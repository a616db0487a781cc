#!/usr/bin/env bash
# The image test: builds the CPU image from Dockerfile.cuda on locally made stand-ins for its base images and runs it as
# docs/docker.md and the Kubernetes manifests do (its own non-root user, read-only root, a writable /tmp, models from a
# mounted volume, ports published on 127.0.0.1). CI runs it after the README's test command (.ci/run).
#
# Needs root: installs docker.io, debootstrap and curl when missing, starts dockerd when none runs and stops only a
# daemon it started; removes what it made (stand-ins, the image, the container, its work folder). No registry is
# reachable here, so the bases are stand-ins (stand-ins/): Debian 13 made with debootstrap for ubuntu:24.04, plus this
# machine's .NET SDK and CA bundle for the SDK image. What they cannot prove is listed in docs/docker.md.
# Prints one line per check and then "image: N passed, N failed"; exits non-zero when a check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
here=$repo/tests/image

docker=/usr/bin/docker   # Debian's client: builds with BuildKit without the buildx plugin
export DOCKER_BUILDKIT=1
label=io.dotnet-inference.image-test
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
image=inference-server:image-test
container=inference-server-image-test
base=inference-image-test/debian:trixie

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAILED: $1"; }
step() { echo "-- $1 ($(date -u +%H:%M:%S))"; }
# A command that fails outside a check stops the test; say where, and count it.
trap 'echo "FAILED: tests/image/run.sh stopped at line $LINENO: $BASH_COMMAND"; echo "image: $passed passed, $((failed + 1)) failed"' ERR

# ---- prerequisites -----------------------------------------------------------------------------------------------------
missing=()
[[ -x /usr/sbin/dockerd && -x $docker ]] || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/inference-image-test.XXXXXX)
dockerd_pid=""
cleanup() {
  local status=$?
  set +e
  if [[ -n "$($docker ps -aq --filter "name=^${container}$" 2>/dev/null)" ]]; then
    $docker rm -f "$container" >/dev/null 2>&1
  fi
  $docker image rm -f "$image" "$image-cuda" >/dev/null 2>&1
  # The stand-ins this run made carry the label; an image that was there before keeps its tag.
  local ids
  ids=$($docker image ls -q --filter "label=$label=standin" 2>/dev/null | sort -u)
  [[ -n "$ids" ]] && $docker image rm -f $ids >/dev/null 2>&1
  $docker image rm -f "$base" >/dev/null 2>&1
  if [[ -n "$dockerd_pid" ]]; then
    $docker builder prune -af >/dev/null 2>&1
    kill "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

if ! $docker info >/dev/null 2>&1; then
  step "starting dockerd"
  /usr/sbin/dockerd >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do
    $docker info >/dev/null 2>&1 && break
    sleep 1
  done
  $docker info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail -n 20 "$work/dockerd.log"; exit 1; }
fi

# ---- stand-ins for the base images of the CPU build --------------------------------------------------------------------
# An image of that name that is not a stand-in (a real base pulled earlier) is used as it is.
real_image() {
  $docker image inspect "$1" >/dev/null 2>&1 &&
    [[ -z "$($docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null)" ]]
}

# The external images the CPU build starts from, read from the Dockerfile's FROM lines (stage names and the
# runtime-${ACCELERATOR} indirection excluded; the CUDA base is not part of the CPU build).
mapfile -t bases < <(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile.cuda | grep -v '\$' | grep -v '^nvidia/cuda:' | grep ':' || true)
((${#bases[@]})) || { echo "no base images found in Dockerfile.cuda"; exit 1; }

dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
step "making the stand-in base (debootstrap Debian 13 from $mirror)"
debootstrap --variant=minbase trixie "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log"; exit 1; }
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -c . | $docker import --change "LABEL $label=standin" - "$base" >/dev/null
rm -rf "$work/rootfs"

for name in "${bases[@]}"; do
  if real_image "$name"; then
    echo "using the existing image $name"
    continue
  fi
  case "$name" in
    */dotnet/sdk:*)
      step "making the stand-in $name (Debian 13 + ICU + this machine's .NET SDK $(dotnet --version) and CA bundle)"
      mkdir -p "$work/sdk"
      cp -al "$dotnet_root" "$work/sdk/dotnet" 2>/dev/null || cp -a "$dotnet_root" "$work/sdk/dotnet"
      cp /etc/ssl/certs/ca-certificates.crt "$work/sdk/"
      $docker build -q -f "$here/standins/sdk.Dockerfile" --build-arg BASE="$base" -t "$name" "$work/sdk" >/dev/null
      rm -rf "$work/sdk"
      ;;
    */dotnet/aspnet:*)
      step "making the stand-in $name (this machine's .NET and ASP.NET Core runtimes)"
      mkdir -p "$work/aspnet/dotnet/shared"
      cp -a "$dotnet_root/dotnet" "$dotnet_root/host" "$work/aspnet/dotnet/"
      cp -a "$dotnet_root/shared/Microsoft.NETCore.App" "$dotnet_root/shared/Microsoft.AspNetCore.App" "$work/aspnet/dotnet/shared/"
      cp -a "$dotnet_root"/*.txt "$work/aspnet/dotnet/" 2>/dev/null || true
      $docker build -q -f "$here/standins/aspnet.Dockerfile" -t "$name" "$work/aspnet" >/dev/null
      rm -rf "$work/aspnet"
      ;;
    ubuntu:*)
      step "tagging the stand-in base as $name"
      $docker tag "$base" "$name"
      ;;
    *)
      echo "no stand-in for the base image $name: teach tests/image/run.sh to make one"
      exit 1
      ;;
  esac
done

# ---- the build ---------------------------------------------------------------------------------------------------------
step "docker build -f Dockerfile.cuda --build-arg ACCELERATOR=cpu"
started=$(date +%s)
if $docker build -f Dockerfile.cuda --build-arg ACCELERATOR=cpu --progress=plain -t "$image" . >"$work/build.log" 2>&1; then
  pass "the CPU image builds from Dockerfile.cuda ($(($(date +%s) - started)) s)"
else
  fail "the CPU image builds from Dockerfile.cuda"
  tail -n 40 "$work/build.log"
  echo "image: $passed passed, $failed failed"
  exit 1
fi
size=$($docker image inspect -f '{{.Size}}' "$image")
echo "image size: $((size / 1000000)) MB; /app: $($docker run --rm --entrypoint du "$image" -sm /app | cut -f1) MB"

# The image carries no CA bundle of this machine: its bundle is the distribution's.
if [[ "$($docker run --rm --entrypoint sha256sum "$image" /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1)" == "$(sha256sum </etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1)" ]]; then
  fail "the image's CA bundle is the distribution's, not this machine's"
else
  pass "the image's CA bundle is the distribution's, not this machine's"
fi

# ---- native libraries --------------------------------------------------------------------------------------------------
# Every shared library under /app and the .NET runtime resolves its dependencies (each library's own folder is where the
# engines and .NET load their siblings from); prints "library: dependency" for each that does not.
unresolved_libraries() { # image
  $docker run --rm --entrypoint /bin/sh "$1" -c '
    find /app /usr/share/dotnet -type f -name "*.so*" | sort | while read -r lib; do
      LD_LIBRARY_PATH="$(dirname "$lib")" ldd "$lib" 2>&1 | awk -v lib="$lib" "/not found/ { print lib \": \" \$1 }"
    done'
}
# .NET's LTTng trace provider is loaded only when LTTng tracing is turned on (DOTNET_LTTng); Microsoft's own runtime
# images leave liblttng-ust out too.
optional='^/usr/share/dotnet/shared/Microsoft.NETCore.App/[^/]+/libcoreclrtraceptprovider.so: liblttng-ust.so.[0-9]+$'
count=$($docker run --rm --entrypoint /bin/sh "$image" -c 'find /app /usr/share/dotnet -type f -name "*.so*" | wc -l')
unresolved=$(unresolved_libraries "$image" | grep -vE "$optional" || true)
if [[ -z "$unresolved" && "$count" -gt 10 ]]; then
  pass "all $count native libraries under /app and /usr/share/dotnet resolve (ldd; LTTng's optional trace provider aside)"
else
  fail "native libraries resolve: $count found; unresolved:"
  echo "$unresolved"
fi
# The libraries .NET loads by name at run time (dlopen) are installed.
runtime_libs=$($docker run --rm --entrypoint /bin/sh "$image" -c 'ldconfig -p' | grep -oE 'lib(icuuc|icui18n)\.so\.[0-9]+|libssl\.so\.3|libcrypto\.so\.3|libz\.so\.1|libgomp\.so\.1' | sort -u | tr '\n' ' ' || true)
if [[ "$runtime_libs" == *libicuuc.so.* && "$runtime_libs" == *libicui18n.so.* && "$runtime_libs" == *libssl.so.3* && "$runtime_libs" == *libcrypto.so.3* ]]; then
  pass "the libraries .NET loads at run time are installed: $runtime_libs"
else
  fail "the libraries .NET loads at run time (ICU, OpenSSL) are installed: found $runtime_libs"
fi

# ---- run it as the docs and the manifests do ---------------------------------------------------------------------------
step "docker run (user of the image, read-only root, tmpfs /tmp, models volume, 127.0.0.1 ports)"
cp -r models "$work/models"
# A TorchScript module of ../shared (copied into the volume, never into the repository): libtorch loads in the image.
mkdir -p "$work/models/linrelu/1"
cp "$repo/../shared/models/torchscript/linrelu.script.dat" "$work/models/linrelu/1/model.pt"
printf '%s\n' 'input: [{name: x, data_type: TYPE_FP32, dims: [10]}]' 'output: [{name: y, data_type: TYPE_FP32, dims: [6]}]' \
  >"$work/models/linrelu/config.yaml"
chmod -R a+rX "$work/models"
$docker run -d --name "$container" \
  --read-only --tmpfs /tmp:rw,nosuid,nodev,size=1g \
  --cap-drop ALL --security-opt no-new-privileges --memory 2g \
  -v "$work/models:/models:ro" \
  -p 127.0.0.1::8000 -p 127.0.0.1::8001 -p 127.0.0.1::8002 \
  "$image" >/dev/null
started=$(date +%s)
health=""
for _ in $(seq 1 180); do
  health=$($docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$container")
  running=$($docker inspect -f '{{.State.Running}}' "$container")
  [[ "$health" == healthy || "$running" != true ]] && break
  sleep 1
done
if [[ "$health" == healthy ]]; then
  pass "the container turns healthy through its HEALTHCHECK ($(($(date +%s) - started)) s)"
else
  fail "the container turns healthy (health: '$health', running: $($docker inspect -f '{{.State.Running}}' "$container"))"
  $docker logs --tail 40 "$container" 2>&1
  echo "image: $passed passed, $failed failed"
  exit 1
fi
port() { $docker port "$container" "$1/tcp" | grep -m1 '^127\.0\.0\.1:' ; }
rest=$(port 8000)
grpc=$(port 8001)
metrics=$(port 8002)

pid=$($docker inspect -f '{{.State.Pid}}' "$container")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
gid=$(awk '/^Gid:/ { print $2 }' "/proc/$pid/status")
if [[ "$uid:$gid" == "10001:10001" && "$($docker inspect -f '{{.Config.User}}' "$image")" == "10001:10001" ]]; then
  pass "the server runs as the image's user 10001:10001 (the manifests' runAsUser/runAsGroup)"
else
  fail "the server runs as 10001:10001 (process: $uid:$gid; image USER: $($docker inspect -f '{{.Config.User}}' "$image"))"
fi
if ! $docker exec "$container" /bin/sh -c 'touch /app/probe' 2>/dev/null && $docker exec "$container" /bin/sh -c 'touch /tmp/probe && rm /tmp/probe'; then
  pass "the root filesystem is read-only and /tmp is writable"
else
  fail "the root filesystem is read-only and /tmp is writable"
fi

# Compares an answer with the expected text; prints both on a mismatch.
expect() { # name expected actual
  if [[ "$3" == "$2" ]]; then
    pass "$1"
  else
    fail "$1"
    echo "  expected: $2"
    echo "  actual:   $3"
  fi
}

expect "metrics port: ready" 200 "$(curl -s -o /dev/null -w '%{http_code}' "http://$metrics/v2/health/ready")"
expect "REST: every sample model is READY" \
  '[["bigram_lm","1","READY"],["linear","1","READY"],["linear","2","READY"],["linrelu","1","READY"],["simple","1","READY"],["string_normalizer","1","READY"]]' \
  "$(curl -s -X POST "http://$rest/v2/repository/index" | grep -oE '"name":"[^"]+","version":"[^"]+","state":"[A-Z]+"' \
      | sed -E 's/"name":"([^"]+)","version":"([^"]+)","state":"([A-Z]+)"/["\1","\2","\3"]/' | sort | paste -sd, | sed 's/^/[/; s/$/]/')"
expect "REST: simple adds and subtracts (the README's example)" \
  '{"model_name":"simple","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"INT32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},{"name":"OUTPUT1","datatype":"INT32","shape":[1,16],"data":[-1,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]}]}' \
  "$(curl -s "http://$rest/v2/models/simple/infer" -d '{"inputs":[
      {"name":"INPUT0","datatype":"INT32","shape":[1,16],"data":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]},
      {"name":"INPUT1","datatype":"INT32","shape":[1,16],"data":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}')"
expect "REST: string_normalizer lower-cases BYTES, non-ASCII included" \
  '{"model_name":"string_normalizer","model_version":"1","outputs":[{"name":"normalized","datatype":"BYTES","shape":[3],"data":["hello","world","äöü"]}]}' \
  "$(curl -s "http://$rest/v2/models/string_normalizer/infer" -d '{"inputs":[{"name":"text","datatype":"BYTES","shape":[3],"data":["Hello","WORLD","ÄÖÜ"]}]}')"
expect "REST: bad input is a 400 naming the input" "400 INPUT0" \
  "$(curl -s -o "$work/bad.json" -w '%{http_code}' "http://$rest/v2/models/simple/infer" -d '{"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[1,16],"data":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}') $(grep -o INPUT0 "$work/bad.json" | head -n 1)"

# TorchScript through libtorch's CPU build: ../shared's expected values of linrelu for an input of ones.
answer=$(curl -s "http://$rest/v2/models/linrelu/infer" -d '{"inputs":[{"name":"x","datatype":"FP32","shape":[10],"data":[1,1,1,1,1,1,1,1,1,1]}]}')
linrelu=$(grep -oE '"data":\[[^]]*\]' <<<"$answer" | tr -d '"data:[]' || true)
if awk -F, -v expected="0.313458264,0,0.9996568,0,0,0" 'BEGIN { n = split(expected, e, ",") }
     { if (NF != n) exit 1; for (i = 1; i <= n; i++) if ($i - e[i] > 1e-5 || e[i] - $i > 1e-5) exit 1 }' <<<"$linrelu"; then
  pass "REST: a TorchScript module (linrelu) gives its expected values ($linrelu)"
else
  fail "REST: a TorchScript module (linrelu) gives its expected values: $answer"
fi

# gRPC with the project's own client, infer (built by the test command; built here when it is missing).
infer=$repo/server/InferenceServer.Client.Cli/bin/Debug/net10.0/infer.dll
[[ -f "$infer" ]] || dotnet build server/InferenceServer.Client.Cli --nologo -v quiet -clp:ErrorsOnly >/dev/null
cat >"$work/simple.json" <<'EOF'
{"inputs": [
  {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]},
  {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}]}
EOF
grpc_out=$(dotnet "$infer" predict simple --grpc "$grpc" --json "$work/simple.json" --format json 2>&1 | tr -d ' \n' || true)
if [[ "$grpc_out" == *'"OUTPUT0"'*'[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]'* && "$grpc_out" == *'"OUTPUT1"'*'[-1,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]'* ]]; then
  pass "gRPC: ModelInfer on simple (infer --grpc)"
else
  fail "gRPC: ModelInfer on simple (infer --grpc): $grpc_out"
fi
expect "gRPC: an unknown model is NOT_FOUND-style exit 1" 1 \
  "$(dotnet "$infer" metadata no_such_model --grpc "$grpc" >/dev/null 2>&1; echo $?)"

# OpenAI: a seeded completion is deterministic (the same text as the server outside the container), and a chat
# stream ends with [DONE].
completion=$(curl -s "http://$rest/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model":"bigram_lm","prompt":"The server","max_tokens":3,"temperature":0.8,"seed":1}')
expect "OpenAI: a seeded completion from bigram_lm" '"text":"ond","finish_reason":"length"' \
  "$(grep -oE '"text":"[^"]*"' <<<"$completion")$(grep -oE ',"finish_reason":"[a-z]+"' <<<"$completion")"
stream=$(curl -sN "http://$rest/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"bigram_lm","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"Say something"}]}')
chunks=$(grep -c '"chat.completion.chunk"' <<<"$stream" || true)
if [[ "$(grep -v '^$' <<<"$stream" | tail -n 1)" == "data: [DONE]" && "$chunks" -ge 8 ]]; then
  pass "OpenAI: a streamed chat completion ($chunks chunks, then [DONE])"
else
  fail "OpenAI: a streamed chat completion ends with [DONE]:"
  tail -n 4 <<<"$stream"
fi

# ---- drain -----------------------------------------------------------------------------------------------------------
step "docker stop -t 50"
started=$(date +%s)
$docker stop -t 50 "$container" >/dev/null
took=$(($(date +%s) - started))
code=$($docker inspect -f '{{.State.ExitCode}}' "$container")
# The logs are read whole before grep looks: `docker logs | grep -q` fails under pipefail whenever grep quits before
# docker logs has written its last line (SIGPIPE), which made this check flaky.
logs=$($docker logs "$container" 2>&1)
if [[ "$code" == 0 && "$took" -lt 50 ]] && grep -q 'Draining: readiness now fails' <<<"$logs"; then
  pass "docker stop -t 50 drains and the server exits 0 (${took} s)"
else
  fail "docker stop -t 50 drains and the server exits 0 (exit code $code after ${took} s)"
  $docker logs --tail 20 "$container" 2>&1
fi
$docker rm -f "$container" >/dev/null

# ---- the CUDA image, built on a stand-in base ---------------------------------------------------------------------------
# No GPU and no NVIDIA base here: the cuda flavor is built on the Debian stand-in tagged as the CUDA base, which proves
# the Dockerfile's cuda path (restore and publish of ONNX Runtime's CUDA build, the runtime stage) but not the real base.
# ONNX Runtime's CUDA provider must then miss exactly the CUDA libraries that base provides (and the driver's
# libcuda.so.1), as Packaging/CudaBaseTests checks against the base's tag.
cuda_base=$(awk 'toupper($1) == "FROM" && $2 ~ /^nvidia\/cuda:/ { print $2 }' Dockerfile.cuda)
cuda_major=$(sed -E 's|^nvidia/cuda:([0-9]+)\..*|\1|' <<<"$cuda_base")
if real_image "$cuda_base"; then
  echo "using the existing image $cuda_base"
else
  $docker tag "$base" "$cuda_base"
fi
step "docker build -f Dockerfile.cuda (ACCELERATOR=cuda, on a stand-in for $cuda_base)"
started=$(date +%s)
if $docker build -f Dockerfile.cuda --progress=plain -t "$image-cuda" . >"$work/build-cuda.log" 2>&1; then
  pass "the CUDA image builds from Dockerfile.cuda on a stand-in base ($(($(date +%s) - started)) s)"
  size=$($docker image inspect -f '{{.Size}}' "$image-cuda")
  echo "CUDA image size on the stand-in base (without CUDA's own libraries): $((size / 1000000)) MB; /app: $($docker run --rm --entrypoint du "$image-cuda" -sm /app | cut -f1) MB"
  provider=$($docker run --rm --entrypoint /bin/sh "$image-cuda" -c 'find /app -name libonnxruntime_providers_cuda.so; find /app -name "libtorch_cuda*.so" -o -name "libcudnn*"')
  if [[ "$provider" == */libonnxruntime_providers_cuda.so && "$(wc -l <<<"$provider")" == 1 ]]; then
    pass "the CUDA image has ONNX Runtime's CUDA provider and no libtorch CUDA or cuDNN of its own"
  else
    fail "the CUDA image has ONNX Runtime's CUDA provider and no libtorch CUDA or cuDNN of its own: $provider"
  fi
  # What the CUDA base provides for its major (runtime, cuBLAS, cuRAND), the driver's libcuda.so.1 (the NVIDIA
  # Container Toolkit mounts it), and TensorRT's libraries for ONNX Runtime's TensorRT provider, which the server never
  # asks for.
  from_base="libcudart\.so\.$cuda_major|libcublas\.so\.$cuda_major|libcublasLt\.so\.$cuda_major|libcurand\.so\.10|libcudnn\.so\.9|libcuda\.so\.1"
  allowed="$optional|^/app/(.*/)?libonnxruntime_providers_cuda\.so: ($from_base)$|^/app/(.*/)?libonnxruntime_providers_tensorrt\.so: ($from_base|libnvinfer\.so\.[0-9]+|libnvonnxparser\.so\.[0-9]+)$"
  all=$(unresolved_libraries "$image-cuda")
  unexpected=$(grep -vE "$allowed" <<<"$all" || true)
  cuda_missing=$(grep -E '/libonnxruntime_providers_cuda\.so: ' <<<"$all" | sed 's/.*: //' | sort | tr '\n' ' ' || true)
  if [[ -z "$unexpected" && "$cuda_missing" == *libcudart.so.$cuda_major* ]]; then
    pass "the CUDA image misses only what the CUDA $cuda_major base and the driver provide: $cuda_missing"
  else
    fail "the CUDA image misses only what the CUDA $cuda_major base and the driver provide; unresolved:"
    echo "$all"
  fi
  # Without a GPU, a model on the default device cuda:0 is UNAVAILABLE with the reason, and the server stays up.
  $docker run -d --name "$container" --read-only --tmpfs /tmp -v "$work/models:/models:ro" -p 127.0.0.1::8000 "$image-cuda" >/dev/null
  rest=$(port 8000)
  state=""
  for _ in $(seq 1 90); do
    state=$(curl -s -X POST "http://$rest/v2/repository/index" 2>/dev/null | grep -oE '\{"name":"simple"[^}]*\}' || true)
    [[ -n "$state" && "$state" != *LOADING* ]] && break
    sleep 1
  done
  if [[ "$state" == *'"state":"UNAVAILABLE"'* && "$state" == *"libonnxruntime_providers_cuda.so does not load (libcublasLt.so.$cuda_major: cannot open shared object file"* ]]; then
    pass "the CUDA image without a GPU: simple is UNAVAILABLE with its reason, the server answers"
  else
    fail "the CUDA image without a GPU: simple is UNAVAILABLE with its reason: $state"
    $docker logs --tail 20 "$container" 2>&1
  fi
  echo "  $state"
  $docker rm -f "$container" >/dev/null
else
  fail "the CUDA image builds from Dockerfile.cuda on a stand-in base"
  tail -n 40 "$work/build-cuda.log"
fi

trap - ERR
echo "image: $passed passed, $failed failed"
[[ $failed == 0 ]]
