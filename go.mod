module github.com/xtlsjingle/xtlsjingle

go 1.26.0

require (
	filippo.io/bigmod v0.1.0
	github.com/Kong/go-srp v0.0.0-20191210190804-cde1efa3c083
	github.com/google/go-cmp v0.7.0
	github.com/pion/stun/v3 v3.1.7
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
	golang.org/x/text v0.43.0
	gosrc.io/xmpp v0.5.1
	rsc.io/qr v0.2.0
)

require (
	github.com/google/uuid v1.1.1 // indirect
	github.com/pion/dtls/v3 v3.1.5 // indirect
	github.com/pion/logging v0.2.4 // indirect
	github.com/pion/transport/v4 v4.1.0 // indirect
	github.com/wlynxg/anet v0.0.5 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/xerrors v0.0.0-20190717185122-a985d3407aa7 // indirect
	nhooyr.io/websocket v1.6.5 // indirect
)
