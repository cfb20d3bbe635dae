// Package replicas tests several Gatehouse processes that share one
// PostgreSQL database: a sign-in started on one replica finishes on
// another, code limits and single use hold across them, a revocation on one
// reaches the others within a second, replicas migrate a shared schema
// safely, and a database outage fails closed and heals by itself. It holds
// tests only; they need GATEHOUSE_TEST_POSTGRES_DSN.
package replicas
