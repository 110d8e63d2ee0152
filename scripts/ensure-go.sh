#!/usr/bin/env bash
# Sourced by the project's scripts: makes a Go >= 1.26 toolchain the first `go` on PATH.
# A fresh Debian 12 has none; its golang-go (1.19) is used only to fetch the official
# toolchain module (golang.org/toolchain) from the Go module proxy, the way `go` itself does
# when GOTOOLCHAIN asks for a newer release.
want_go=1.26.8

go_ok() {
	command -v go >/dev/null 2>&1 || return 1
	local v
	v=$(go env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	[ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "${minor%%[!0-9]*}" -ge 26 ]; }
}

[ -d /usr/local/go/bin ] && case ":$PATH:" in *":/usr/local/go/bin:"*) ;; *) PATH=/usr/local/go/bin:$PATH ;; esac
if ! go_ok; then
	dest=/usr/local/lib/go$want_go
	if [ ! -x "$dest/bin/go" ]; then
		if ! command -v go >/dev/null 2>&1; then
			echo "ensure-go: installing Debian's golang-go to bootstrap Go $want_go" >&2
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
		fi
		arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
		tmp=$(mktemp -d)
		echo "ensure-go: fetching golang.org/toolchain go$want_go.linux-$arch from the module proxy" >&2
		dir=$(cd "$tmp" && GO111MODULE=on GOMODCACHE="$tmp/mod" GOFLAGS=-mod=mod \
			go mod download -json "golang.org/toolchain@v0.0.1-go$want_go.linux-$arch" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[ -n "$dir" ] && [ -d "$dir" ] || { echo "ensure-go: download failed" >&2; exit 1; }
		mkdir -p "$(dirname "$dest")"
		cp -R "$dir" "$dest"
		chmod -R u+w "$tmp" "$dest" && rm -rf "$tmp"
		chmod +x "$dest"/bin/* "$dest"/pkg/tool/*/*
	fi
	PATH=$dest/bin:$PATH
fi
export PATH
go_ok || { echo "ensure-go: no Go >= 1.26 available" >&2; exit 1; }
