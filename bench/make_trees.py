#!/usr/bin/env python3
"""Builds the benchmark trees of bench/run under a work directory, deterministically.

  node/  ~30 000 small files in ~1 500 packages, node_modules-like (text from the system's
         Python and Perl sources, so it compresses like JavaScript does)
  jdk/   a copy of an installed JDK (/usr/lib/jvm), else ~270 MB made of system binaries
  big/   one 2 GiB file of system binaries and text
"""
import glob
import os
import random
import shutil
import subprocess
import sys

work = sys.argv[1]
rng = random.Random(42)


def pool(roots, suffixes, limit):
    """Concatenated contents of files under roots, sorted, up to limit bytes."""
    out = bytearray()
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                if suffixes and not name.endswith(suffixes):
                    continue
                path = os.path.join(dirpath, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        out += f.read(4 << 20)
                except OSError:
                    continue
                if len(out) >= limit:
                    return bytes(out[:limit])
    return bytes(out)


def node(dest, text):
    names = ["index.js", "package.json", "README.md", "LICENSE", "CHANGELOG.md"]
    files = 0
    pkg = 0
    while files < 30000:
        base = os.path.join(dest, f"pkg-{pkg:04d}")
        pkg += 1
        count = rng.randint(5, 35)
        for i in range(count):
            if i < len(names):
                path = os.path.join(base, names[i])
            else:
                sub = ["lib", "dist", "src", "lib/util", "types"][i % 5]
                ext = ".d.ts" if sub == "types" else ".js"
                path = os.path.join(base, sub, f"m{i}{ext}")
            size = min(int(rng.lognormvariate(7.8, 1.2)), 400_000)
            start = rng.randrange(0, len(text) - size - 1)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(text[start:start + size])
            files += 1


def synthetic_jdk(dest, binary):
    layout = [("lib/modules", 140 << 20), ("lib/server/libjvm.so", 22 << 20),
              ("lib/src.zip", 50 << 20)]
    layout += [(f"lib/lib{i:02d}.so", rng.randint(200 << 10, 3 << 20)) for i in range(40)]
    layout += [(f"bin/tool{i:02d}", rng.randint(10 << 10, 40 << 10)) for i in range(30)]
    layout += [(f"legal/module{i:03d}/LICENSE", rng.randint(2 << 10, 12 << 10))
               for i in range(200)]
    for path, size in layout:
        path = os.path.join(dest, path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        start = rng.randrange(0, max(1, len(binary) - size))
        with open(path, "wb") as f:
            f.write(binary[start:start + size])


def build(name, make):
    """Builds work/name with make(dest) unless a finished one is there."""
    dest = os.path.join(work, name)
    marker = os.path.join(work, f".{name}-done")
    if os.path.exists(marker):
        return
    shutil.rmtree(dest, ignore_errors=True)
    make(dest)
    open(marker, "w").close()


def copy_or_synthesize_jdk(dest):
    base = "/usr/lib/jvm"
    jdks = sorted(d for d in os.listdir(base) if "jdk" in d and
                  os.path.isdir(os.path.join(base, d)) and
                  not os.path.islink(os.path.join(base, d))) if os.path.isdir(base) else []
    if jdks and not os.environ.get("BENCH_SYNTHETIC_JDK"):
        subprocess.run(["cp", "-a", os.path.join(base, jdks[0]), dest], check=True)
        print(f"jdk: copy of {base}/{jdks[0]}", file=sys.stderr)
    else:
        synthetic_jdk(dest, binary_pool())
        print("jdk: synthetic", file=sys.stderr)


def binary_pool():
    return pool(["/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/lib"], (), 320 << 20)


def text_pool():
    roots = sorted(glob.glob("/usr/lib/python3*")) + ["/usr/share/perl", "/usr/share/perl5"]
    return pool(roots, (".py", ".pm", ".pl"), 64 << 20)


def big(dest):
    os.makedirs(dest)
    piece = binary_pool() + text_pool()
    with open(os.path.join(dest, "blob"), "wb") as f:
        left = 2 << 30
        while left > 0:
            n = min(left, len(piece))
            f.write(piece[:n])
            left -= n


os.makedirs(work, exist_ok=True)
build("node", lambda dest: node(dest, text_pool()))
build("jdk", copy_or_synthesize_jdk)
build("big", big)
