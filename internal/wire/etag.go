package wire

import (
	"fmt"
	"strings"
)

// CheckETag returns "" when etag can be sent as an If-Match value, or the
// rule it breaks. The value may be weak (W/) and quoted or not, as the
// clients take it; inside, it holds only the characters an entity tag
// allows (RFC 9110: visible ASCII but '"', and bytes from 0x80), so that a
// control character or a quote never reaches a header, where the transport
// would refuse the request only once it is being sent.
func CheckETag(etag string) string {
	v := strings.Trim(strings.TrimPrefix(strings.TrimSpace(etag), "W/"), `"`)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80 {
			continue
		}
		return fmt.Sprintf("has %q at byte %d of its value; an ETag holds visible ASCII characters but '\"'", rune(v[i]), i)
	}
	return ""
}
