// Package integration tests Gatehouse together with the real servers it is
// deployed with: nginx and Caddy in front of it in forward-auth mode, each
// started from the configurations in examples/ on loopback ports. It holds
// tests only.
package integration
