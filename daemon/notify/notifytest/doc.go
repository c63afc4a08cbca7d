// Package notifytest helps tests of code that sends mfad's recovery and
// notice messages: [StartSMTP] runs an in-process SMTP server on loopback
// that records what it receives (decoded), and [PhoneScript] writes a
// phone command (see notify.Command) that appends each code it is given
// to a file.
//
// It is for tests only and imports only the standard library (testing
// included).
package notifytest
