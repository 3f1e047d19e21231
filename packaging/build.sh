#!/usr/bin/env bash
# Build the FASFinder one-folder bundle (dist/fasfinder/) and a Debian package (dist/fasfinder_<ver>_amd64.deb).
#
#   bash packaging/build.sh            # bundle + .deb
#   bash packaging/build.sh --bundle   # bundle only
#   bash packaging/build.sh --deb      # .deb from an existing dist/fasfinder/
#
# FLAVOUR=cpu (default): the CPU-only installer, build venv packaging/.build-venv-slim from
# packaging/requirements-slim.txt (torch==2.13.0+cpu, no torchvision) + packaging/requirements-build.txt.
# FLAVOUR=cuda: the earlier bundle with PyPI's CUDA torch, build venv packaging/.build-venv from requirements.txt.
# The first run creates the build venv (needs the package index, or the CPU wheel in pip's find-links);
# later runs are offline. Environment: PYTHON (interpreter for the build venv, default python3.11 or
# python3), DIST (output folder, default dist), DEB_COMPRESS (xz | zstd | gzip | none, default zstd),
# DEB_LEVEL. Run it under `nice -n 10` on a shared machine. See packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FLAVOUR=${FLAVOUR:-cpu}
case "$FLAVOUR" in
  cpu) VENV=packaging/.build-venv-slim REQS=packaging/requirements-slim.txt ;;
  cuda) VENV=packaging/.build-venv REQS=requirements.txt ;;
  *) echo "FLAVOUR must be cpu or cuda" >&2; exit 2 ;;
esac
DIST=${DIST:-dist}
WORK=build/pyinstaller-$FLAVOUR
APP=fasfinder
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
DEB_COMPRESS=${DEB_COMPRESS:-zstd}

do_bundle=1 do_deb=1
case "${1:-}" in
  --bundle) do_deb=0 ;;
  --deb) do_bundle=0 ;;
  "") ;;
  *) echo "usage: $0 [--bundle | --deb]" >&2; exit 2 ;;
esac

say() { echo "build: $*" >&2; }
size() { du -sh --apparent-size "$1" | cut -f1; }
t_start=$SECONDS

# --- build venv (online once, then offline) ---------------------------------------------------------
venv_ready() {
  local want
  want=$(cat "$REQS" packaging/requirements-build.txt | sha256sum | cut -d' ' -f1)
  [ -x "$VENV/bin/pyinstaller" ] && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]
}
if [ $do_bundle = 1 ] && ! venv_ready; then
  PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
  say "creating $VENV with $PY (needs the package index; later builds are offline)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade "pip<27"
  "$VENV/bin/python" -m pip install -q -r "$REQS" -r packaging/requirements-build.txt
  cat "$REQS" packaging/requirements-build.txt | sha256sum | cut -d' ' -f1 > "$VENV/.requirements.sha256"
fi

# --- bundle -----------------------------------------------------------------------------------------
if [ $do_bundle = 1 ]; then
  say "PyInstaller $("$VENV/bin/pyinstaller" --version), $FLAVOUR build ($REQS): $WORK -> $DIST/$APP"
  t0=$SECONDS
  "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$WORK" \
    packaging/fasfinder.spec
  # Symbol tables (.symtab/.strtab: names for debuggers and crash traces, never read when the library is
  # loaded) of the shared libraries that ship them: 128 MB measured in the CPU bundle, 89 MB of it
  # libtorch_cpu.so and 9 MB libtorch_python.so. strip --strip-unneeded keeps the dynamic symbol table
  # the loader needs (what Debian's dh_strip does). Libraries vendored by auditwheel (the wheels'
  # `<pkg>.libs/` folders) are left alone: patchelf rewrote their program headers, and strip on them
  # can leave segments the loader refuses ("ELF load command address/offset not page-aligned",
  # measured on numpy.libs/libscipy_openblas64_ -> numpy does not import).
  before_strip=$(du -sb "$DIST/$APP" | cut -f1)
  find "$DIST/$APP/_internal" -type f -name '*.so*' -not -path '*.libs/*' -print0 | while IFS= read -r -d '' so; do
    if readelf -S "$so" 2>/dev/null | grep -q ' \.symtab '; then strip --strip-unneeded "$so"; fi
  done
  say "stripped symbol tables: $(( (before_strip - $(du -sb "$DIST/$APP" | cut -f1)) / 1048576 )) MB"
  t_bundle=$((SECONDS - t0))
  say "bundle built in ${t_bundle} s"
fi
B=$DIST/$APP
[ -x "$B/$APP" ] || { say "no bundle at $B (run without --deb first)"; exit 1; }

# What the spec must have put in; fail here rather than on a user's machine.
missing=0
for f in _internal/PySide6/Qt/plugins/platforms/libqxcb.so _internal/PySide6/Qt/plugins/platforms/libqoffscreen.so \
         _internal/PySide6/Qt/plugins/iconengines/libqsvgicon.so _internal/PySide6/Qt/plugins/imageformats/libqsvg.so \
         _internal/models/dlib-models.card.json _internal/resources/style.qss _internal/resources/icons/app.svg \
         _internal/licenses/NOTICE.txt _internal/skimage/data/astronaut.png; do
  [ -e "$B/$f" ] || { say "MISSING in bundle: $f"; missing=1; }
done
for dat in $(sed -n 's/.*"package_file": "\([^"]*\)".*/\1/p' models/dlib-models.card.json); do
  [ -f "$B/_internal/face_recognition_models/models/$dat" ] || { say "MISSING in bundle: dlib file $dat"; missing=1; }
done
for pt in models/*.pt; do
  [ -e "$pt" ] || continue
  [ -f "$B/_internal/models/$(basename "$pt")" ] || { say "MISSING in bundle: $pt"; missing=1; }
done
if [ "$FLAVOUR" = cpu ]; then  # the point of the CPU build: no CUDA code and no torchvision at all
  cuda_files=$(find "$B" \( -name 'libtorch_cuda*' -o -name 'libcudart*' -o -name 'libcublas*' -o -name 'libcudnn*' \
                  -o -name 'libcufft*' -o -name 'libcurand*' -o -name 'libcusparse*' -o -name 'libnccl*' -o -name 'libnvrtc*' \
                  -o -name 'libnvJitLink*' -o -path '*/nvidia/*' -o -path '*/torchvision*' \) -print | head -5)
  [ -z "$cuda_files" ] || { say "CUDA or torchvision files in the CPU bundle: $cuda_files"; missing=1; }
fi
[ $missing = 0 ] || exit 1

# --- Debian package ---------------------------------------------------------------------------------
DEB=""
if [ $do_deb = 1 ]; then
  command -v dpkg-deb >/dev/null || { say "dpkg-deb not found: cannot build the .deb"; exit 1; }
  t0=$SECONDS
  STAGE=build/deb/${APP}_${VERSION}_amd64
  rm -rf "$STAGE"
  mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
           "$STAGE/usr/share/icons/hicolor/scalable/apps" "$STAGE/usr/share/icons/hicolor/256x256/apps" \
           "$STAGE/usr/share/doc/$APP"
  cp -a "$B" "$STAGE/opt/$APP"
  cat > "$STAGE/usr/bin/$APP" <<'EOF'
#!/bin/sh
# FASFinder launcher: the desktop app without arguments, the command line with a subcommand.
exec /opt/fasfinder/fasfinder "$@"
EOF
  chmod 0755 "$STAGE/usr/bin/$APP"
  cat > "$STAGE/usr/share/applications/$APP.desktop" <<'EOF'
[Desktop Entry]
Type=Application
Name=FASFinder
GenericName=Offline face search
Comment=Search a gallery of faces offline, with liveness checks and explanations
Exec=fasfinder %f
MimeType=image/jpeg;image/png;image/bmp;image/tiff;image/webp;
Icon=fasfinder
Terminal=false
Categories=Utility;
Keywords=face;search;missing persons;
EOF
  cp resources/icons/app.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/$APP.svg"
  QT_QPA_PLATFORM=offscreen "$VENV/bin/python" packaging/render_icon.py \
    "$STAGE/usr/share/icons/hicolor/256x256/apps/$APP.png" 256
  cp packaging/licenses/NOTICE.txt "$STAGE/usr/share/doc/$APP/copyright"
  installed_kb=$(du -sk "$STAGE" | cut -f1)
  cat > "$STAGE/DEBIAN/control" <<EOF
Package: $APP
Version: $VERSION
Section: graphics
Priority: optional
Architecture: amd64
Maintainer: FASFinder team <fasfinder@localhost>
Installed-Size: $installed_kb
Depends: libc6 (>= 2.28), libgl1, libegl1, libxkbcommon0, libxkbcommon-x11-0, libfontconfig1, libdbus-1-3, libglib2.0-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, libxcb-image0, libxcb-render-util0, libxcb-xkb1, libxcb-shape0, libxcb-randr0, libxcb-xinerama0
Description: offline face search with liveness checks and explanations
 FASFinder searches a local gallery of faces for a photo, checks every face for
 spoofing (liveness) and explains matches with Grad-CAM++ heatmaps. Desktop app
 and command line (fasfinder search PHOTO --json). Works offline; models included.
 .
 The 68-point landmark model (iBUG 300-W) is licensed for non-commercial use
 only; see /usr/share/doc/fasfinder/copyright.
EOF
  cat > "$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if command -v update-desktop-database >/dev/null 2>&1; then update-desktop-database -q /usr/share/applications || true; fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true; fi
EOF
  chmod 0755 "$STAGE/DEBIAN/postinst"
  case "$DEB_COMPRESS" in
    xz) zopt=(-Zxz -z"${DEB_LEVEL:-6}") ;;
    zstd) zopt=(-Zzstd -z"${DEB_LEVEL:-9}") ;;
    gzip) zopt=(-Zgzip -z"${DEB_LEVEL:-6}") ;;
    none) zopt=(-Znone) ;;
    *) say "DEB_COMPRESS must be xz, zstd, gzip or none"; exit 2 ;;
  esac
  DEB=$DIST/${APP}_${VERSION}_amd64.deb
  dpkg-deb --root-owner-group "${zopt[@]}" --build "$STAGE" "$DEB" >/dev/null
  t_deb=$((SECONDS - t0))
  say "deb built in ${t_deb} s ($DEB_COMPRESS)"
  rm -rf "$STAGE"
fi

# --- summary ----------------------------------------------------------------------------------------
echo "== FASFinder build summary =="
[ -n "${t_bundle:-}" ] && echo "bundle time:   ${t_bundle} s"
[ -n "${t_deb:-}" ] && echo "deb time:      ${t_deb} s"
echo "total time:    $((SECONDS - t_start)) s"
echo "flavour:       $FLAVOUR ($REQS)"
echo "bundle:        $B  $(size "$B") ($(du -sb "$B" | cut -f1) bytes, $(find "$B" -type f | wc -l) files)"
[ -n "$DEB" ] && echo "deb:           $DEB  $(du -h --apparent-size "$DEB" | cut -f1) ($(stat -c %s "$DEB") bytes, ${DEB_COMPRESS}); Installed-Size ${installed_kb} KiB"
echo "largest folders in the bundle (du --apparent-size, top level of _internal):"
du -s --apparent-size -B1M "$B"/_internal/* | sort -rn | head -12 | awk '{printf "  %6d MB  %s\n", $1, $2}' || true  # head closes the pipe early (SIGPIPE under pipefail)
echo "largest files:"
find "$B" -type f -size +20M -printf '%s %P\n' | sort -rn | head -12 | awk '{printf "  %6d MB  %s\n", $1/1048576, $2}' || true
