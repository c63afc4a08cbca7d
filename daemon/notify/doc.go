// Package notify delivers mfad's recovery and notice messages: e-mail
// through an SMTP relay ([SMTP]) or a sendmail-compatible command
// ([Sendmail]), and short codes to a phone through a local command
// ([Command]) or an HTTP webhook ([Webhook]); for development and tests,
// both kinds into a local directory ([Outbox]). [New] builds the configured
// channels from the [recovery.email] and [recovery.phone] tables of the
// daemon's configuration ([Config]).
//
// The domain (package authn) owns the interfaces it consumes; [Mailer] and
// [Phone] here have the same method sets, so the types of this package
// satisfy authn's interfaces without either package importing the other.
//
// What a message carries is a secret (a verification or recovery code):
// no error of this package contains the code or the message body. Output
// a peer sends back (an SMTP reply, a command's stderr) is bounded and has
// anything that looks like the code redacted before it reaches an error.
// Errors are classed by [ErrInvalid] (the caller's input cannot be sent)
// and [ErrDelivery] (the channel failed; trying later may help).
//
// Nothing goes through a shell: commands are executed directly, with a
// fixed environment.
//
// notify imports only the standard library. Its subpackage notifytest
// holds an in-process SMTP server and a phone script for other packages'
// tests.
package notify
