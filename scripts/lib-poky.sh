# Shared by the poky scripts (poky-conformance, poky-compare-graph,
# bench-poky).
# shellcheck shell=bash

# usage: poky_host_needs
# poky's sanity check refuses a host without its HOSTTOOLS (chrpath, diffstat
# and gawk are the ones a plain Debian lacks), and BitBake refuses to start
# without an en_US.UTF-8 locale: installs the packages (apt-get) and makes the
# locale (localedef) when missing. Needs root or sudo then.
poky_host_needs() {
  local missing=() p sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  for p in chrpath diffstat gawk locales; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing poky's host needs: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! locale -a 2>/dev/null | grep -qi '^en_US\.utf-\?8$'; then
    echo "making the en_US.UTF-8 locale BitBake needs" >&2
    $sudo localedef -i en_US -f UTF-8 en_US.UTF-8
  fi
}

# usage: poky_setup   (needs $poky and $work set)
# Writes $work/poky.yml, the kas file (qemux86-64, DISTRO poky, layers meta,
# meta-poky, meta-yocto-bsp, BB_NO_NETWORK = "1", build and cache directories
# under $work), and for BitBake the same bblayers.conf/local.conf text bitzel
# generates from it, in $work/bb/build.
poky_setup() {
  poky_host_needs
  mkdir -p "$work"
  chmod 755 "$work"
  cat > "$work/poky.yml" <<YML
header:
  version: 14
machine: qemux86-64
distro: poky
repos:
  poky:
    path: $poky
    layers:
      meta:
      meta-poky:
      meta-yocto-bsp:
local_conf_header:
  nonet: |
    BB_NO_NETWORK = "1"
bitzel:
  build_dir: $work/bitzel-build
  cache_dir: $work/bitzel-cache
YML
  mkdir -p "$work/bb/build/conf"
  printf 'BBLAYERS ?= " \\\n    %s/meta \\\n    %s/meta-poky \\\n    %s/meta-yocto-bsp"\nBBPATH ?= "${TOPDIR}"\nBBFILES ??= ""\n' \
    "$poky" "$poky" "$poky" > "$work/bb/build/conf/bblayers.conf"
  printf '# nonet\nBB_NO_NETWORK = "1"\n\nMACHINE ??= "qemux86-64"\nDISTRO ??= "poky"\nBBMULTICONFIG ?= ""\n' \
    > "$work/bb/build/conf/local.conf"
}

# usage: bbcmd 'command'   (needs $work, $poky and $bbuser set)
# Prints a shell command line that runs `command` in BitBake's build
# directory $work/bb/build, with poky's bitbake/bin on PATH and an
# en_US.UTF-8 locale; as $bbuser when set (BitBake refuses to run as root),
# after giving it $work/bb.
bbcmd() {
  local cmd="cd '$work/bb/build' && export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 PATH='$poky/bitbake/bin:/usr/bin:/bin' && $1"
  if [ -n "${bbuser:-}" ]; then
    chown -R "$bbuser" "$work/bb"
    printf 'su %q -s /bin/bash -c %q' "$bbuser" "$cmd"
  else
    printf 'bash -c %q' "$cmd"
  fi
}

# usage: bbrun 'command': runs bbcmd's command line.
bbrun() {
  eval "$(bbcmd "$1")"
}
