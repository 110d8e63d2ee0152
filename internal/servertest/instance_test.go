package servertest

import (
	"errors"
	"fmt"
	"regexp"
	"testing"
)

// Retry starts again only while the error wraps the retryable one.
func TestRetry(t *testing.T) {
	errBind := errors.New("bind")
	calls := 0
	_, err := Retry(3, errBind, func() (int, error) { calls++; return 0, fmt.Errorf("port: %w", errBind) })
	if calls != 3 || !errors.Is(err, errBind) {
		t.Fatalf("%d calls, %v; want 3 calls and the bind error", calls, err)
	}
	calls = 0
	other := errors.New("config")
	_, err = Retry(3, errBind, func() (int, error) { calls++; return 0, other })
	if calls != 1 || err != other {
		t.Fatalf("%d calls, %v; want 1 call and the config error", calls, err)
	}
	calls = 0
	v, err := Retry(3, errBind, func() (int, error) {
		calls++
		if calls < 2 {
			return 0, errBind
		}
		return 7, nil
	})
	if v != 7 || err != nil || calls != 2 {
		t.Fatalf("got %d, %v after %d calls", v, err, calls)
	}
}

// Credentials are fresh for every account and use only letters and digits.
func TestCredentials(t *testing.T) {
	u1, p1, err := Credentials(1)
	if err != nil {
		t.Fatal(err)
	}
	u2, p2, _ := Credentials(2)
	ok := regexp.MustCompile(`^u[0-9]+x[0-9a-f]{6}$`)
	if !ok.MatchString(u1) || !ok.MatchString(u2) || u1 == u2 || p1 == p2 || len(p1) != 18 {
		t.Fatalf("credentials %s/%s, %s/%s", u1, p1, u2, p2)
	}
}

type fakeServer struct{ running, stopped bool }

func (f *fakeServer) Running() bool   { return f.running }
func (f *fakeServer) LogTail() string { return "(log)" }
func (f *fakeServer) Stop()           { f.stopped = true }

// Shared starts its server once and stops it once asked.
func TestShared(t *testing.T) {
	var sh Shared[*fakeServer]
	starts := 0
	start := func() (*fakeServer, error) { starts++; return &fakeServer{running: true}, nil }
	a := sh.Get(t, "servertest", start)
	b := sh.Get(t, "servertest", start)
	if a != b || starts != 1 {
		t.Fatalf("two servers or %d starts", starts)
	}
	sh.Stop()
	if !a.stopped {
		t.Fatal("Stop did not stop the server")
	}
	var never Shared[*fakeServer]
	never.Stop() // nothing started: nothing to stop
}
