#!/usr/bin/env bash
# Makes a .NET host that can load TorchSharp's native shim on a machine whose libstdc++ is too old.
#
# TorchSharp 0.107's libLibTorchSharp.so needs GLIBCXX_3.4.32 (GCC 13); Debian 12 stops at 3.4.30. A process has
# one libstdc++, and the .NET runtime loads the system's before any model does, so the fix has to be in place when
# the process starts: a copy of the dotnet executable whose ELF interpreter is Debian 13's loader, run with
# LD_LIBRARY_PATH naming Debian 13's libc, libstdc++ and libgcc (unpacked here, never installed system-wide).
#
# usage: prepare-libstdcxx.sh OUT_DIR
# Prints "native" when the system's libstdc++ is new enough (nothing to do), else OUT_DIR once it is ready:
#   OUT_DIR/lib          Debian 13's ld-linux-x86-64.so.2, libc.so.6, libstdc++.so.6, libgcc_s.so.1, ...
#   OUT_DIR/dotnet       the .NET host folder: a patched copy of the dotnet executable, the rest linked
set -euo pipefail

needed=GLIBCXX_3.4.32
out=${1:?usage: prepare-libstdcxx.sh OUT_DIR}

system_libstdcxx() {
  local f
  for f in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /lib/x86_64-linux-gnu/libstdc++.so.6; do
    [ -e "$f" ] && { readlink -f "$f"; return; }
  done
  ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 / {print $NF; exit}'
}

sys=$(system_libstdcxx)
if [ -n "$sys" ] && grep -qa "$needed" "$sys"; then
  echo native
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "prepare-libstdcxx: only x86_64 is handled (this is $(uname -m))" >&2
  exit 1
fi

# .ready records the .NET installation it was made from; a new SDK or runtime means making it again.
stamp() { local root; root=$(dirname "$(readlink -f "$(command -v dotnet)")"); ls "$root/sdk" "$root/shared/Microsoft.NETCore.App" 2>/dev/null; }
if [ -f "$out/.ready" ] && [ "$(cat "$out/.ready")" = "$(stamp)" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
if [ -f "$out/.ready" ] && [ "$(cat "$out/.ready")" = "$(stamp)" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A private apt configuration that knows Debian 13 (trixie) only; nothing is installed, packages are just fetched.
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/etc/preferences.d" "$work/debs" "$work/root"
echo "deb http://deb.debian.org/debian trixie main" > "$work/apt/sources.list"
: > "$work/apt/status"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=$work/apt/etc"
  -o "Dir::Etc::PreferencesParts=$work/apt/etc/preferences.d" -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::State::status=$work/apt/status" -o "Dir::Cache=$work/apt/cache"
  -o "APT::Sandbox::User=$(id -un)" -o "Debug::NoLocking=1" -o "Acquire::Languages=none"
)
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$work/debs" && apt-get "${apt_opts[@]}" -qq download libc6 libstdc++6 libgcc-s1 patchelf >&2)
for deb in "$work"/debs/*.deb; do
  dpkg -x "$deb" "$work/root"
done

lib="$out/lib"
rm -rf "$out"
mkdir -p "$lib" "$out/dotnet"
cp -a "$work"/root/usr/lib/x86_64-linux-gnu/. "$lib/"
[ -d "$work/root/lib/x86_64-linux-gnu" ] && cp -a "$work"/root/lib/x86_64-linux-gnu/. "$lib/"
loader="$lib/ld-linux-x86-64.so.2"
[ -e "$loader" ] || loader=$(find "$work/root" -name 'ld-linux-x86-64.so.2' | head -1)
[ -e "$lib/ld-linux-x86-64.so.2" ] || cp -L "$loader" "$lib/ld-linux-x86-64.so.2"
grep -qa "$needed" "$lib/libstdc++.so.6" || { echo "prepare-libstdcxx: Debian 13's libstdc++ lacks $needed" >&2; exit 1; }

# The .NET host folder. The host resolves the SDK's and the app's paths through symbolic links and tools such as
# `dotnet test` start child hosts from the folder they resolve to, so the dotnet executable is a patched copy, host/ is
# copied (small), each SDK's top-level files are hard links (copies across file systems), and the rest are links.
dotnet_exe=$(readlink -f "$(command -v dotnet)")
dotnet_root=$(dirname "$dotnet_exe")
link_or_copy() { cp -l "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
for entry in "$dotnet_root"/*; do
  name=$(basename "$entry")
  case "$name" in
    dotnet) ;;
    host) cp -a "$entry" "$out/dotnet/host" ;;
    sdk)
      mkdir -p "$out/dotnet/sdk"
      for version in "$entry"/*/; do
        version=${version%/}
        target="$out/dotnet/sdk/$(basename "$version")"
        mkdir -p "$target"
        for item in "$version"/*; do
          if [ -f "$item" ] && [ ! -L "$item" ]; then link_or_copy "$item" "$target/"; else ln -s "$item" "$target/$(basename "$item")"; fi
        done
      done
      ;;
    *) ln -s "$entry" "$out/dotnet/$name" ;;
  esac
done
cp "$dotnet_exe" "$out/dotnet/dotnet"
"$lib/ld-linux-x86-64.so.2" --library-path "$lib" "$work/root/usr/bin/patchelf" \
  --set-interpreter "$lib/ld-linux-x86-64.so.2" "$out/dotnet/dotnet"

# Proof before declaring it ready: the patched host starts with the new libraries.
LD_LIBRARY_PATH="$lib" "$out/dotnet/dotnet" --version >/dev/null
stamp > "$out/.ready"
echo "$out"
