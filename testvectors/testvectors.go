// Package testvectors holds the project's language-neutral test vectors: corrected examples
// from the specifications (SPEC.md), stanzas captured from Gajim and Libervia, and the crypto
// vectors of SPEC Appendix A. Each file's name starts with the SPEC ID it proves; each area
// (one folder per package) has a README.md naming the source sections.
package testvectors

import "embed"

// FS holds every vector file, addressed by its path below this folder, e.g.
// "captured/gajim153-xtls-ibb.xml".
//
//go:embed *
var FS embed.FS
