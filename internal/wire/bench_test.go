package wire

import "testing"

// BenchmarkParseError reads each error body shape IoT Hub sends, as the
// pipeline does for every error answer (a fan-out over offline devices
// reads one per target).
func BenchmarkParseError(b *testing.B) {
	for _, bc := range []struct{ name, body, header string }{
		{"escaped", `{"Message":"{\"errorCode\":404103,\"trackingId\":\"dde6cb7b025443d0a26e370e517d43db-G:11-TimeStamp:11/07/2018 09:22:57\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:01:00\"},\"timestampUtc\":\"2018-11-07T09:22:57.6054134Z\"}","ExceptionMessage":""}`, "DeviceNotOnline"},
		{"object", `{"Message":{"errorCode":404001,"trackingId":"dde6cb7b025443d0a26e370e517d43db-G:11-TimeStamp:11/07/2018 09:22:57","message":"Device not found."}}`, "DeviceNotFound"},
		{"legacy", `{"Message":"ErrorCode:DeviceAlreadyExists;Conflict","ExceptionMessage":"Tracking ID:e4cb4b6c18f4462fbe2c1a2d02d7dbe4-G:11-TimeStamp:07/16/2016 00:12:41"}`, ""},
		{"routing", `{"Message":"The requested resource does not support http method 'PUT'."}`, ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if info := ParseError(body, bc.header); info.Message == "" {
					b.Fatal("no message")
				}
			}
		})
	}
}
