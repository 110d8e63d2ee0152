package xtls_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// The srp bootstrap between an initiator (Romeo, TLS client) and a responder (Juliet, TLS
// server) over any bytestream, here net.Pipe: TLS 1.3, then XSRP, then each side pins the
// other's certificate so the next session can use x509.
func Example() {
	romeo, _ := xtls.NewIdentity("romeo@montague.lit", xtls.KeyEd25519)
	juliet, _ := xtls.NewIdentity("juliet@capulet.lit", xtls.KeyEd25519)
	romeoPins, julietPins := xtls.NewMemoryStore(), xtls.NewMemoryStore()

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ccfg, _ := xtls.ClientConfig(romeo, "juliet@capulet.lit", xtls.MethodSRP, romeoPins)
	scfg, _ := xtls.ServerConfig(juliet, "romeo@montague.lit/orchard", xtls.MethodSRP, julietPins)

	done := make(chan error, 1)
	go func() {
		fp, err := xtls.ServerXSRP(ctx, tls.Server(b, scfg), juliet, "romeo@montague.lit/orchard", "shared secret")
		if err == nil {
			err = julietPins.Pin("romeo@montague.lit", fp, xtls.VerifiedSRP, time.Now())
		}
		done <- err
	}()
	fp, err := xtls.ClientXSRP(ctx, tls.Client(a, ccfg), romeo, "romeo@montague.lit/orchard", "shared secret")
	if err == nil {
		err = romeoPins.Pin("juliet@capulet.lit", fp, xtls.VerifiedSRP, time.Now())
	}
	fmt.Println("initiator:", err, "responder:", <-done)
	pins, _ := romeoPins.Pins("juliet@capulet.lit")
	fmt.Println("Juliet pinned as", pins[0].Fingerprint.Equal(juliet.Fingerprint()), pins[0].Verified)
	// Output:
	// initiator: <nil> responder: <nil>
	// Juliet pinned as true srp
}

// Fingerprints for people: hex groups and the RFC 6920 ni URI (NI-6).
func ExampleFingerprint() {
	fp, _ := xtls.ParseFingerprint("", "95:28:C0:D2:8D:E0:FD:62:55:61:49:C8:DE:92:A8:EF:26:02:40:DB:89:60:84:05:86:CD:B7:D8:15:92:79:B6")
	fmt.Println(fp)
	fmt.Println(fp.Groups())
	fmt.Println(fp.NI())
	// Output:
	// 9528c0d28de0fd62556149c8de92a8ef260240db8960840586cdb7d8159279b6
	// 9528 C0D2 8DE0 FD62 5561 49C8 DE92 A8EF 2602 40DB 8960 8405 86CD B7D8 1592 79B6
	// ni:///sha-256;lSjA0o3g_WJVYUnI3pKo7yYCQNuJYIQFhs232BWSebY
}
