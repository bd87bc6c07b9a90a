//go:build !unix

package childapi

// openFlags: nothing to add where open never waits for a peer.
const openFlags = 0
