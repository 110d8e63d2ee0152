package prosodytest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Befriend gives the accounts a and b (bare JIDs from Account) a mutual presence
// subscription (subscription "both" on each roster), so that each receives the other's
// presence, as contacts do. It replaces both rosters by writing Prosody's roster files, so it
// must be called before either account logs in (Prosody loads a roster at login).
func (s *Server) Befriend(t testing.TB, a, b string) {
	t.Helper()
	for _, pair := range [][2]string{{a, b}, {b, a}} {
		user, host, ok := strings.Cut(pair[0], "@")
		if !ok || host != s.Domain || strings.ContainsAny(user, "/\\%\"") {
			t.Fatalf("prosodytest: Befriend: %q is not an account of this server", pair[0])
		}
		dir := filepath.Join(s.Dir, "data", s.Domain, "roster")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("return {\n\t[false] = { [\"version\"] = 1; [\"pending\"] = {}; };\n"+
			"\t[%s] = { [\"subscription\"] = \"both\"; [\"groups\"] = {}; };\n};\n", strconv.Quote(pair[1]))
		if err := os.WriteFile(filepath.Join(dir, user+".dat"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
