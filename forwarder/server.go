package forwarder

import "github.com/gofiber/fiber/v2"

// ServerConfig sets the fiber.Config fields the forwarder depends on; call
// it on the config before fiber.New:
//
//   - StreamRequestBody: request bodies reach Forward as a stream instead
//     of being read whole into memory first.
//   - DisablePreParseMultipartForm: multipart bodies are not parsed (and
//     consumed) by the server, so they reach the upstream byte-identical.
//   - DisableDefaultContentType: fasthttp would otherwise invent
//     "Content-Type: text/plain; charset=utf-8" for an upstream answer
//     that has none.
//   - DisableDefaultDate: fasthttp would otherwise replace the upstream's
//     Date with its own. Gatehouse's own pages then carry no Date unless
//     they set one.
//   - ServerHeader stays "": no Server header is added to proxied answers.
//   - DisableHeaderNormalizing stays false: with it, fasthttp's header
//     lookups become case-sensitive, so deleting "X-Auth-Request-Email"
//     would miss a client's "x-auth-request-email".
//
// Not set here but required: ReadTimeout and WriteTimeout must be 0 (or
// generous), since fasthttp applies them to a whole streamed request body
// and a whole response, event streams included.
func ServerConfig(c *fiber.Config) {
	c.StreamRequestBody = true
	c.DisablePreParseMultipartForm = true
	c.DisableDefaultContentType = true
	c.DisableDefaultDate = true
	c.ServerHeader = ""
	c.DisableHeaderNormalizing = false
}
