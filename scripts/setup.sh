#!/usr/bin/env bash
# Installs what Clover needs to build and run on Debian 12 (bookworm):
# the OpenCL ICD loader and headers, CLBlast, POCL (a CPU OpenCL device, so
# everything runs without a GPU), clinfo, the Fashion-MNIST data set,
# zlib, pkg-config (SwiftPM finds OpenCL, CLBlast and Open MPI through it),
# Open MPI (libopenmpi-dev, openmpi-bin: `mpirun` for data-parallel
# training and its tests), and for the static NVIDIA check
# (scripts/nvidia_static.sh) clang-15 with libclc-15 (OpenCL C to NVPTX) and
# python3-venv (the environment its PyPI ptxas is installed into), and iproute2
# (`ip netns`: the two-host training tests' network namespaces).
#
# Only missing packages are installed, and `apt-get update` runs only when
# something must be installed, so a second run is quick and needs no network.
# The Swift toolchain is not installed here: it must already be on PATH or at
# /opt/swift/usr/bin.
#
# Run it (`bash scripts/setup.sh`) or source it (`source scripts/setup.sh`,
# as main.sh and test.sh do, so that the PATH fix-up below carries over).
set -euo pipefail

clover_setup() {
    local packages=(
        ocl-icd-opencl-dev
        opencl-headers
        libclblast-dev
        pocl-opencl-icd
        clinfo
        dataset-fashion-mnist
        zlib1g-dev
        pkg-config
        python3
        libopenmpi-dev
        openmpi-bin
        clang-15
        libclc-15
        python3-venv
        iproute2
    )

    # The toolchain tarball unpacked at /opt/swift is not on PATH by default.
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "error: swift not found: install the Swift toolchain (6.0 or later) and put it on PATH," >&2
        echo "       or unpack it at /opt/swift so that /opt/swift/usr/bin/swift exists." >&2
        return 1
    fi

    local missing=()
    local package
    for package in "${packages[@]}"; do
        # `dpkg -s` also succeeds for removed packages whose configuration
        # files remain, so require the installed state explicitly.
        if ! dpkg -s "$package" 2>/dev/null | grep -q '^Status: install ok installed$'; then
            missing+=("$package")
        fi
    done

    if [ "${#missing[@]}" -eq 0 ]; then
        echo "setup: all packages present; $(swift --version 2>/dev/null | head -n 1)"
        return 0
    fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "error: not root and sudo is not installed; cannot install: ${missing[*]}" >&2
            return 1
        fi
        sudo=(sudo)
    fi

    echo "setup: installing ${missing[*]}"
    # Explicit `|| return`: when sourced, this function runs as the left side
    # of `||`, where `set -e` does not apply.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" || return 1
    echo "setup: installed ${missing[*]}; $(swift --version 2>/dev/null | head -n 1)"
}

# Builds the release `clover` tool and prints its path. Swift 6.3.1's
# optimiser has crashed now and then (signal 11 or 6) on this package, and
# the same build then succeeded, so a crashed release build is retried twice
# before giving up.
clover_release_binary() {
    local attempt product=${1:-clover}
    for attempt in 1 2 3; do
        if swift build -c release --product "$product" >&2; then
            echo "$(swift build -c release --product "$product" --show-bin-path)/$product"
            return 0
        fi
        echo "setup: release build failed (attempt $attempt of 3)" >&2
    done
    return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    clover_setup
else
    # Sourced: fail the caller (which runs with `set -e`) without exiting
    # an interactive shell that sourced this by hand.
    clover_setup || return 1
fi
