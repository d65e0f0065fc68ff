// Package auth authenticates back-end applications to the Azure IoT Hub
// service API.
//
// Every request the SDK sends carries an Authorization header. The HTTP
// pipeline gets that header from an [Authorizer], a one-method interface that
// is asked once per request attempt, retries included. This package provides
// three kinds of Authorizer:
//
//   - Shared access keys. A [SharedAccessKeyCredential] holds the name and key
//     of one of the hub's shared access policies (for example "service" or
//     "iothubowner", found under "Shared access policies" in the Azure portal).
//     [SharedAccessKeyCredential.Authorizer] returns an Authorizer for one hub
//     that mints a shared access signature (SAS) token, caches it and renews
//     it when less than half of its lifetime remains. The key can be rotated
//     at run time with [SharedAccessKeyCredential.Update].
//   - A ready-made shared access signature, as found in a connection string
//     with a SharedAccessSignature entry. [NewStaticSASAuthorizer] sends it
//     unchanged and reports [ErrTokenExpired] once it has expired; it is
//     never renewed.
//   - Microsoft Entra ID. [NewTokenCredentialAuthorizer] adapts any
//     azcore.TokenCredential (for example one from the azidentity module) and
//     sends "Bearer <token>", refreshing the token ahead of its expiry.
//
// [ParseConnectionString] reads a service connection string such as
//
//	HostName=myhub.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=<base64 key>
//
// and [ConnectionString.Authorizer] turns it into the matching Authorizer.
// [NewSASToken] mints a single token, for callers that need one outside the
// SDK.
//
// # Secrets
//
// Keys, signatures and bearer tokens never appear in error messages, and
// every type here that holds one prints it as <redacted> with the fmt
// package (all verbs, including %#v) and with log/slog.
//
// # Clocks
//
// SAS expiry times are Unix wall-clock seconds that the hub compares with its
// own clock, so renewal decisions compare wall-clock times too: a machine
// that was suspended renews on wake-up rather than sending an expired token.
// Tests drive time with the testing/synctest package; there is no
// replaceable clock.
//
// # Concurrency
//
// All Authorizers and credentials are safe for concurrent use. In the common
// case an Authorization call is an atomic load and a time comparison: no
// locking, no hashing and no allocation.
package auth
