//go:build !race

package e2e

// raceDetector tells whether this test binary runs under the race
// detector, which multiplies the memory of the in-process test servers.
const raceDetector = false
