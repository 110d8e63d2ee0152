package filetransfer

// Blake2b512 exposes the internal BLAKE2b-512 to the external tests.
func Blake2b512(b []byte) []byte {
	h := newBlake2b512()
	h.Write(b)
	return h.Sum(nil)
}
