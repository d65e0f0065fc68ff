package httpmock

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hubkit/iothub"
)

// Authentication types of a registry entry, as the wire spells them.
const (
	AuthSAS                  = "sas"
	AuthSelfSigned           = "selfSigned"
	AuthCertificateAuthority = "certificateAuthority"
	AuthNone                 = "none"
)

// MaxIDLength is the longest device or module id the registry accepts.
const MaxIDLength = 128

// neverTime is how the hub writes a time that has not happened yet.
const neverTime = "0001-01-01T00:00:00Z"

// formatTime writes a time as the hub does: UTC, seven fractional digits,
// or neverTime for the zero time.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return neverTime
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// ticksEpoch is 1970-01-01 in .NET ticks (100 ns since 0001-01-01).
const ticksEpoch = 621355968000000000

// entry is the registry and twin state shared by devices and modules. It
// is guarded by Hub.mu.
type entry struct {
	generation   int64 // the generationId's digits
	etag         int64
	auth         storedAuth
	connUpdated  time.Time
	lastActivity time.Time
	c2dCount     int
	twin         twinState
}

// authState is an entry's authentication mechanism.
type authState struct {
	typ                       string
	primaryKey, secondaryKey  string
	primaryThumb, secondThumb string
}

// storedAuth is an entry's authentication as the hub keeps it: compact
// while the entry has the keys it was created with, so that an idle
// device holds no key strings.
type storedAuth struct {
	typ string
	// set is the authentication a registry write gave the entry; nil
	// means SAS with the entry's generated keys, which are not stored but
	// made from the hub's key seed and the generationId on every read
	// (Hub.keys).
	set *authState
}

// storeAuth returns a as an entry keeps it.
func storeAuth(a authState) storedAuth { return storedAuth{typ: a.typ, set: &a} }

// thumbprints returns the entry's X.509 thumbprints.
func (s storedAuth) thumbprints() (primary, secondary string) {
	if s.set == nil {
		return "", ""
	}
	return s.set.primaryThumb, s.set.secondThumb
}

// keys returns the entry's symmetric keys, making generated ones. The
// caller holds h.mu.
func (h *Hub) keys(e *entry) (primary, secondary string) {
	if a := e.auth.set; a != nil {
		return a.primaryKey, a.secondaryKey
	}
	return h.derivedKey(e.generation, 'p'), h.derivedKey(e.generation, 's')
}

// derivedKey returns the generated key of an entry: standard base64 of 32
// bytes, HMAC-SHA256 of the generation and which key under the hub's
// random key seed, so that it is as unpredictable as NewKey's and the same
// on every read.
func (h *Hub) derivedKey(generation int64, which byte) string {
	mac := hmac.New(sha256.New, h.keySeed[:])
	var b [9]byte
	binary.BigEndian.PutUint64(b[:8], uint64(generation))
	b[8] = which
	mac.Write(b[:])
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// authWire returns the entry's authentication JSON. The caller holds h.mu.
func (h *Hub) authWire(e *entry) authJSON {
	if e.auth.set != nil {
		return e.auth.set.wire()
	}
	a := authState{typ: e.auth.typ}
	a.primaryKey, a.secondaryKey = h.keys(e)
	return a.wire()
}

// generationID returns the entry's generationId.
func (e *entry) generationID() string { return strconv.FormatInt(e.generation, 10) }

// randomETagBase returns where a hub's etag counter starts: a random nine
// digit number, so that etags look like the hub's ("MzE4NzUxOTU1") and
// differ between hubs.
func randomETagBase() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return 100000000 + int64(binary.BigEndian.Uint64(b[:])%800000000)
}

// nextETag returns a new device or module etag counter. The caller holds
// h.mu.
func (h *Hub) nextETag() int64 {
	h.etagSeq++
	return h.etagSeq
}

// etagString is the wire form of a device or module etag counter: base64
// of its decimal digits.
func etagString(n int64) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
}

// twinETagString is the wire form of a twin etag counter: base64 of its
// eight big-endian bytes.
func twinETagString(n uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return base64.StdEncoding.EncodeToString(b[:])
}

// newEntry returns the state of a new registry entry: a generationId, an
// etag, SAS authentication with generated keys and an empty twin. The
// caller holds h.mu.
func (h *Hub) newEntry(now time.Time) entry {
	h.genSeq++
	return entry{
		generation: now.UnixNano()/100 + ticksEpoch + h.genSeq,
		etag:       h.nextETag(),
		auth:       storedAuth{typ: AuthSAS},
		twin:       h.newTwin(now),
	}
}

// setOnline connects or disconnects an endpoint and records it. The caller
// holds Hub.mu.
func (e *entry) setOnline(ep *endpoint, online bool, now time.Time) {
	if ep.online != online {
		e.connUpdated = now
	}
	if online {
		e.lastActivity = now
	}
	ep.online = online
	broadcast(&ep.changed)
}

// validID applies the registry's id rule: 1 to 128 characters, ASCII
// letters and digits and - : . + % _ # * ? ! ( ) , = @ ; $ '.
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-:.+%_#*?!(),=@;$'", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// DeviceCount returns how many devices are registered (modules not
// counted).
func (h *Hub) DeviceCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.devices)
}

// DeviceIDs returns the ids of the registered devices, sorted.
func (h *Hub) DeviceIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sortedDeviceIDs())
}

// sortedDeviceIDs returns the device ids in order, cached until the set of
// devices changes. The caller holds h.mu and must not modify the result.
func (h *Hub) sortedDeviceIDs() []string {
	if h.sortedIDs == nil {
		ids := make([]string, 0, len(h.devices))
		for id := range h.devices {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		h.sortedIDs = ids
	}
	return h.sortedIDs
}

// ETag returns the device's registry etag, unquoted, as in the etag field
// of its JSON.
func (d *Device) ETag() string {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return etagString(d.reg.etag)
}

// Keys returns the device's symmetric keys; both are empty unless its
// authentication type is sas.
func (d *Device) Keys() (primary, secondary string) {
	d.hub.mu.Lock()
	defer d.hub.mu.Unlock()
	return d.hub.keys(&d.reg)
}

// ETag returns the module's registry etag, unquoted.
func (m *Module) ETag() string {
	m.hub.mu.Lock()
	defer m.hub.mu.Unlock()
	return etagString(m.reg.etag)
}

// Wire shapes of the registry.

type thumbprintJSON struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

type symmetricKeyJSON struct {
	PrimaryKey   *string `json:"primaryKey"`
	SecondaryKey *string `json:"secondaryKey"`
}

type authJSON struct {
	SymmetricKey   symmetricKeyJSON `json:"symmetricKey"`
	Type           string           `json:"type"`
	X509Thumbprint thumbprintJSON   `json:"x509Thumbprint"`
}

type capabilitiesJSON struct {
	IotEdge bool `json:"iotEdge"`
}

type deviceJSON struct {
	DeviceID                   string           `json:"deviceId"`
	GenerationID               string           `json:"generationId"`
	Etag                       string           `json:"etag"`
	ConnectionState            string           `json:"connectionState"`
	Status                     string           `json:"status"`
	StatusReason               *string          `json:"statusReason"`
	ConnectionStateUpdatedTime string           `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string           `json:"statusUpdatedTime"`
	LastActivityTime           string           `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int              `json:"cloudToDeviceMessageCount"`
	Authentication             authJSON         `json:"authentication"`
	Capabilities               capabilitiesJSON `json:"capabilities"`
	DeviceScope                *string          `json:"deviceScope"`
	ParentScopes               []string         `json:"parentScopes"`
}

type moduleJSON struct {
	ModuleID                   string   `json:"moduleId"`
	ManagedBy                  *string  `json:"managedBy"`
	DeviceID                   string   `json:"deviceId"`
	GenerationID               string   `json:"generationId"`
	Etag                       string   `json:"etag"`
	ConnectionState            string   `json:"connectionState"`
	ConnectionStateUpdatedTime string   `json:"connectionStateUpdatedTime"`
	LastActivityTime           string   `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int      `json:"cloudToDeviceMessageCount"`
	Authentication             authJSON `json:"authentication"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (a authState) wire() authJSON {
	return authJSON{
		SymmetricKey: symmetricKeyJSON{optString(a.primaryKey), optString(a.secondaryKey)},
		Type:         a.typ,
		X509Thumbprint: thumbprintJSON{
			optString(a.primaryThumb), optString(a.secondThumb),
		},
	}
}

func connectionState(online bool) string {
	if online {
		return "Connected"
	}
	return "Disconnected"
}

func statusString(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}

// scope returns the device's deviceScope: generated for edge devices.
// The caller holds Hub.mu.
func (d *Device) scope() *string {
	if d.iotEdge {
		s := "ms-azure-iot-edge://" + d.id + "-" + d.reg.generationID()
		return &s
	}
	return d.deviceScope
}

// wire returns the device's registry JSON. The caller holds Hub.mu.
func (d *Device) wire() deviceJSON {
	return deviceJSON{
		DeviceID:                   d.id,
		GenerationID:               d.reg.generationID(),
		Etag:                       etagString(d.reg.etag),
		ConnectionState:            connectionState(d.ep.online),
		Status:                     statusString(d.disabled),
		StatusReason:               d.statusReason,
		ConnectionStateUpdatedTime: formatTime(d.reg.connUpdated),
		StatusUpdatedTime:          formatTime(d.statusUpdated),
		LastActivityTime:           formatTime(d.reg.lastActivity),
		CloudToDeviceMessageCount:  d.reg.c2dCount,
		Authentication:             d.hub.authWire(&d.reg),
		Capabilities:               capabilitiesJSON{d.iotEdge},
		DeviceScope:                d.scope(),
		ParentScopes:               append([]string{}, d.parentScopes...),
	}
}

// wire returns the module's registry JSON. The caller holds Hub.mu.
func (m *Module) wire() moduleJSON {
	return moduleJSON{
		ModuleID:                   m.id,
		ManagedBy:                  m.managedBy,
		DeviceID:                   m.device.id,
		GenerationID:               m.reg.generationID(),
		Etag:                       etagString(m.reg.etag),
		ConnectionState:            connectionState(m.ep.online),
		ConnectionStateUpdatedTime: formatTime(m.reg.connUpdated),
		LastActivityTime:           formatTime(m.reg.lastActivity),
		CloudToDeviceMessageCount:  m.reg.c2dCount,
		Authentication:             m.hub.authWire(&m.reg),
	}
}

// Input shapes. Read-only fields are not listed, so they are ignored;
// Go's decoder matches names case-insensitively, as the hub's binder does.

type authInput struct {
	SymmetricKey *struct {
		PrimaryKey   *string `json:"primaryKey"`
		SecondaryKey *string `json:"secondaryKey"`
	} `json:"symmetricKey"`
	Type           *string `json:"type"`
	X509Thumbprint *struct {
		PrimaryThumbprint   *string `json:"primaryThumbprint"`
		SecondaryThumbprint *string `json:"secondaryThumbprint"`
	} `json:"x509Thumbprint"`
}

type deviceInput struct {
	DeviceID       *string    `json:"deviceId"`
	Status         *string    `json:"status"`
	StatusReason   *string    `json:"statusReason"`
	Authentication *authInput `json:"authentication"`
	Capabilities   *struct {
		IotEdge *bool `json:"iotEdge"`
	} `json:"capabilities"`
	DeviceScope  *string  `json:"deviceScope"`
	ParentScopes []string `json:"parentScopes"`
}

type moduleInput struct {
	DeviceID       *string    `json:"deviceId"`
	ModuleID       *string    `json:"moduleId"`
	ManagedBy      *string    `json:"managedBy"`
	Authentication *authInput `json:"authentication"`
}

// deviceSpec is a validated device definition.
type deviceSpec struct {
	disabled     bool
	statusReason *string
	auth         authState
	iotEdge      bool
	deviceScope  *string
	parentScopes []string
}

// decodeObject decodes a JSON object body into v: 400006 when the body is
// not a JSON object, 400004 when a field has the wrong type.
func decodeObject(body []byte, v any) *hubError {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(body) {
		return newError(iothub.ErrorCodeIotHubFormatError, "The request body is not a valid JSON object.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return newError(iothub.ErrorCodeArgumentInvalid, fmt.Sprintf("The value of '%s' has the wrong type.", te.Field))
		}
		return newError(iothub.ErrorCodeIotHubFormatError, "The request body is not a valid JSON object.")
	}
	return nil
}

func invalid(format string, args ...any) *hubError {
	return newError(iothub.ErrorCodeArgumentInvalid, fmt.Sprintf(format, args...))
}

// validKey reports whether k is standard base64 of 16 to 64 bytes.
func validKey(k string) bool {
	b, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(b) >= 16 && len(b) <= 64
}

// validThumbprint reports whether t is 40 (SHA-1) or 64 (SHA-256) hex
// digits.
func validThumbprint(t string) bool {
	if len(t) != 40 && len(t) != 64 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// parseAuth validates an authentication block; nil means SAS with
// generated keys.
func parseAuth(in *authInput) (authState, *hubError) {
	var a authState
	if in != nil {
		if in.SymmetricKey != nil {
			a.primaryKey, a.secondaryKey = deref(in.SymmetricKey.PrimaryKey), deref(in.SymmetricKey.SecondaryKey)
		}
		if in.X509Thumbprint != nil {
			a.primaryThumb, a.secondThumb = deref(in.X509Thumbprint.PrimaryThumbprint), deref(in.X509Thumbprint.SecondaryThumbprint)
		}
		if in.Type != nil {
			a.typ = *in.Type
		}
	}
	hasKeys := a.primaryKey != "" || a.secondaryKey != ""
	hasThumbs := a.primaryThumb != "" || a.secondThumb != ""
	switch {
	case a.typ == "" && hasThumbs && !hasKeys:
		a.typ = AuthSelfSigned
	case a.typ == "":
		a.typ = AuthSAS
	}
	found := false
	for _, t := range []string{AuthSAS, AuthSelfSigned, AuthCertificateAuthority, AuthNone} {
		if strings.EqualFold(a.typ, t) {
			a.typ, found = t, true
		}
	}
	if !found {
		return a, invalid("authentication.type '%s' is not one of sas, selfSigned, certificateAuthority, none.", a.typ)
	}
	switch a.typ {
	case AuthSAS:
		if hasThumbs {
			return a, invalid("x509Thumbprint must be empty for authentication type sas.")
		}
		switch {
		case a.primaryKey == "" && a.secondaryKey == "":
			a.primaryKey, a.secondaryKey = NewKey(), NewKey()
		case a.primaryKey == "" || a.secondaryKey == "":
			return a, invalid("Both primaryKey and secondaryKey must be given, or neither.")
		case !validKey(a.primaryKey) || !validKey(a.secondaryKey):
			return a, invalid("The symmetric keys must be base64 of 16 to 64 bytes.")
		}
	case AuthSelfSigned:
		if hasKeys {
			return a, invalid("symmetricKey must be empty for authentication type selfSigned.")
		}
		if a.primaryThumb == "" || !validThumbprint(a.primaryThumb) ||
			a.secondThumb != "" && !validThumbprint(a.secondThumb) {
			return a, invalid("The thumbprints must be 40 or 64 hexadecimal digits, and primaryThumbprint is required.")
		}
	default:
		if hasKeys || hasThumbs {
			return a, invalid("Authentication type %s takes neither keys nor thumbprints.", a.typ)
		}
	}
	return a, nil
}

// parseStatus validates a status; absent means enabled.
func parseStatus(s *string) (disabled bool, e *hubError) {
	switch {
	case s == nil || strings.EqualFold(*s, "enabled"):
		return false, nil
	case strings.EqualFold(*s, "disabled"):
		return true, nil
	}
	return false, invalid("status '%s' is not one of enabled, disabled.", *s)
}

// parseDevice validates a device definition for the id.
func parseDevice(id string, in *deviceInput) (*deviceSpec, *hubError) {
	if in.DeviceID != nil && *in.DeviceID != id {
		return nil, invalid("The deviceId in the body ('%s') does not match the deviceId in the path ('%s').", *in.DeviceID, id)
	}
	var s deviceSpec
	var e *hubError
	if s.disabled, e = parseStatus(in.Status); e != nil {
		return nil, e
	}
	if in.StatusReason != nil {
		if len([]rune(*in.StatusReason)) > 128 {
			return nil, invalid("statusReason is longer than 128 characters.")
		}
		s.statusReason = in.StatusReason
	}
	if s.auth, e = parseAuth(in.Authentication); e != nil {
		return nil, e
	}
	if in.Capabilities != nil && in.Capabilities.IotEdge != nil {
		s.iotEdge = *in.Capabilities.IotEdge
	}
	if !s.iotEdge && in.DeviceScope != nil && *in.DeviceScope != "" {
		s.deviceScope = in.DeviceScope
	}
	s.parentScopes = slices.Clone(in.ParentScopes)
	return &s, nil
}

// apply replaces the device's updatable registry fields with the spec's.
// The caller holds Hub.mu.
func (d *Device) apply(s *deviceSpec, now time.Time) {
	if d.disabled != s.disabled {
		d.statusUpdated = now
	}
	d.disabled = s.disabled
	d.statusReason = s.statusReason
	d.reg.auth = storeAuth(s.auth)
	d.iotEdge = s.iotEdge
	d.deviceScope = s.deviceScope
	d.parentScopes = s.parentScopes
	d.reg.etag = d.hub.nextETag()
	broadcast(&d.ep.changed)
}

// createDevice registers a new, disconnected device from a spec. The
// caller holds h.mu.
func (h *Hub) createDevice(id string, s *deviceSpec, now time.Time) *Device {
	d := &Device{
		hub: h,
		id:  id,
		ep:  newEndpoint(false, 0, nil, nil),
		reg: h.newEntry(now),
	}
	d.apply(s, now)
	d.statusUpdated = time.Time{}
	if s.disabled {
		d.statusUpdated = now
	}
	h.addDeviceLocked(d)
	return d
}

// createModule registers a new, disconnected module. The caller holds
// h.mu.
func (h *Hub) createModule(d *Device, id string, managedBy *string, auth authState, now time.Time) *Module {
	m := &Module{hub: h, device: d, id: id, ep: newEndpoint(false, 0, nil, nil), reg: h.newEntry(now)}
	m.managedBy, m.reg.auth = managedBy, storeAuth(auth)
	d.addModuleLocked(m)
	return m
}

// ifMatch is a request's If-Match header.
type ifMatch struct {
	present  bool
	wildcard bool
	etag     string // unquoted, without W/
}

// parseIfMatch reads If-Match: quotes and a W/ prefix are stripped, and
// both * and "*" are the wildcard. An empty header counts as absent.
func parseIfMatch(r *http.Request) ifMatch {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	if v == "" {
		return ifMatch{}
	}
	return ifMatch{present: true, wildcard: v == "*", etag: v}
}

// matches reports whether the precondition holds for an entity whose etag
// is etag.
func (im ifMatch) matches(etag string) bool {
	return !im.present || im.wildcard || im.etag == etag
}

func preconditionFailed() *hubError {
	return newError(iothub.ErrorCodePreconditionFailed, "Precondition failed: the etag in If-Match does not match the current etag.")
}

func deviceNotFound(id string) *hubError {
	return newError(iothub.ErrorCodeDeviceNotFound, fmt.Sprintf("Device %s not found.", id))
}

func moduleNotFound(deviceID, moduleID string) *hubError {
	return newError(iothub.ErrorCodeModuleNotFound, fmt.Sprintf("Module %s not found on device %s.", moduleID, deviceID))
}

// checkJSONContentType answers 415 when a request with a body does not
// declare JSON.
func checkJSONContentType(r *http.Request, body []byte) *hubError {
	if len(body) == 0 {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return newError(iothub.ErrorCodeGenericUnsupportedMediaType,
			"The request's Content-Type is not supported; use application/json.")
	}
	return nil
}

// writeEntity sends 200 with a JSON body and its etag in the ETag header.
func writeEntity(w http.ResponseWriter, etag string, v any) {
	w.Header().Set("ETag", `"`+etag+`"`)
	writeJSON(w, http.StatusOK, marshal(v))
}

// getDevice serves GET /devices/{id}.
func (h *Hub) getDevice(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	d := h.devices[rq.params[0]]
	if d == nil {
		h.mu.Unlock()
		deviceNotFound(rq.params[0]).write(w, rq.now)
		return
	}
	dj := d.wire()
	h.mu.Unlock()
	writeEntity(w, dj.Etag, dj)
}

// listDevices serves GET /devices?top=N: up to N devices (N outside 1..1000
// means 1000), in id order.
func (h *Hub) listDevices(w http.ResponseWriter, r *http.Request, _ *routed) {
	top, err := strconv.Atoi(r.URL.Query().Get("top"))
	if err != nil || top < 1 || top > 1000 {
		top = 1000
	}
	h.mu.Lock()
	ids := h.sortedDeviceIDs()
	out := make([]deviceJSON, 0, min(top, len(ids)))
	for _, id := range ids[:min(top, len(ids))] {
		out = append(out, h.devices[id].wire())
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, marshal(out))
}

// putDevice serves PUT /devices/{id}: create without If-Match, replace
// with it.
func (h *Hub) putDevice(w http.ResponseWriter, r *http.Request, rq *routed) {
	id := rq.params[0]
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	if !validID(id) {
		invalid("The deviceId '%s' is not valid: use 1 to 128 ASCII letters, digits or -:.+%%_#*?!(),=@;$'.", id).write(w, rq.now)
		return
	}
	var in deviceInput
	if e := decodeObject(rq.body, &in); e != nil {
		e.write(w, rq.now)
		return
	}
	spec, e := parseDevice(id, &in)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	im := parseIfMatch(r)
	h.mu.Lock()
	d := h.devices[id]
	switch {
	case !im.present && d != nil:
		e = newError(iothub.ErrorCodeDeviceAlreadyExists, fmt.Sprintf("A device with ID '%s' is already registered.", id))
	case im.present && d == nil:
		e = deviceNotFound(id)
	case d != nil && !im.matches(etagString(d.reg.etag)):
		e = preconditionFailed()
	case d == nil:
		d = h.createDevice(id, spec, rq.now)
	default:
		d.apply(spec, rq.now)
	}
	var dj deviceJSON
	if e == nil {
		dj = d.wire()
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	writeEntity(w, dj.Etag, dj)
}

// deleteDevice serves DELETE /devices/{id}.
func (h *Hub) deleteDevice(w http.ResponseWriter, r *http.Request, rq *routed) {
	id := rq.params[0]
	im := parseIfMatch(r)
	h.mu.Lock()
	d := h.devices[id]
	var e *hubError
	switch {
	case d == nil:
		e = deviceNotFound(id)
	case !im.matches(etagString(d.reg.etag)):
		e = preconditionFailed()
	default:
		h.removeDeviceLocked(d)
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listModules serves GET /devices/{id}/modules.
func (h *Hub) listModules(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	d := h.devices[rq.params[0]]
	if d == nil {
		h.mu.Unlock()
		deviceNotFound(rq.params[0]).write(w, rq.now)
		return
	}
	out := make([]moduleJSON, 0, len(d.modules))
	for _, mid := range sortedKeys(d.modules) {
		out = append(out, d.modules[mid].wire())
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, marshal(out))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// getModule serves GET /devices/{id}/modules/{mid}.
func (h *Hub) getModule(w http.ResponseWriter, _ *http.Request, rq *routed) {
	h.mu.Lock()
	m, e := h.lookupModule(rq.params[0], rq.params[1])
	var mj moduleJSON
	if e == nil {
		mj = m.wire()
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	writeEntity(w, mj.Etag, mj)
}

// lookupModule finds a registered module. The caller holds h.mu.
func (h *Hub) lookupModule(deviceID, moduleID string) (*Module, *hubError) {
	d := h.devices[deviceID]
	if d == nil {
		return nil, deviceNotFound(deviceID)
	}
	m := d.modules[moduleID]
	if m == nil {
		return nil, moduleNotFound(deviceID, moduleID)
	}
	return m, nil
}

// putModule serves PUT /devices/{id}/modules/{mid}.
func (h *Hub) putModule(w http.ResponseWriter, r *http.Request, rq *routed) {
	did, mid := rq.params[0], rq.params[1]
	if e := checkJSONContentType(r, rq.body); e != nil {
		e.write(w, rq.now)
		return
	}
	if !validID(mid) {
		invalid("The moduleId '%s' is not valid: use 1 to 128 ASCII letters, digits or -:.+%%_#*?!(),=@;$'.", mid).write(w, rq.now)
		return
	}
	var in moduleInput
	if e := decodeObject(rq.body, &in); e != nil {
		e.write(w, rq.now)
		return
	}
	if in.DeviceID != nil && *in.DeviceID != did {
		invalid("The deviceId in the body ('%s') does not match the deviceId in the path ('%s').", *in.DeviceID, did).write(w, rq.now)
		return
	}
	if in.ModuleID != nil && *in.ModuleID != mid {
		invalid("The moduleId in the body ('%s') does not match the moduleId in the path ('%s').", *in.ModuleID, mid).write(w, rq.now)
		return
	}
	auth, e := parseAuth(in.Authentication)
	if e != nil {
		e.write(w, rq.now)
		return
	}
	im := parseIfMatch(r)
	h.mu.Lock()
	var mj moduleJSON
	d := h.devices[did]
	var m *Module
	if d != nil {
		m = d.modules[mid]
	}
	switch {
	case d == nil:
		e = deviceNotFound(did)
	case !im.present && m != nil:
		e = newError(iothub.ErrorCodeModuleAlreadyExistsOnDevice, fmt.Sprintf("A module with ID '%s' is already registered on device '%s'.", mid, did))
	case im.present && m == nil:
		e = moduleNotFound(did, mid)
	case m != nil && !im.matches(etagString(m.reg.etag)):
		e = preconditionFailed()
	case m == nil:
		m = h.createModule(d, mid, in.ManagedBy, auth, rq.now)
	default:
		m.managedBy, m.reg.auth = in.ManagedBy, storeAuth(auth)
		m.reg.etag = h.nextETag()
	}
	if e == nil {
		mj = m.wire()
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	writeEntity(w, mj.Etag, mj)
}

// deleteModule serves DELETE /devices/{id}/modules/{mid}.
func (h *Hub) deleteModule(w http.ResponseWriter, r *http.Request, rq *routed) {
	im := parseIfMatch(r)
	h.mu.Lock()
	m, e := h.lookupModule(rq.params[0], rq.params[1])
	if e == nil && !im.matches(etagString(m.reg.etag)) {
		e = preconditionFailed()
	}
	if e == nil {
		delete(m.device.modules, m.id)
		m.removed = true
		broadcast(&m.ep.changed)
	}
	h.mu.Unlock()
	if e != nil {
		e.write(w, rq.now)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deviceStats serves GET /statistics/devices.
func (h *Hub) deviceStats(w http.ResponseWriter, _ *http.Request, _ *routed) {
	var s struct {
		Total    int `json:"totalDeviceCount"`
		Enabled  int `json:"enabledDeviceCount"`
		Disabled int `json:"disabledDeviceCount"`
	}
	h.mu.Lock()
	for _, d := range h.devices {
		s.Total++
		if d.disabled {
			s.Disabled++
		} else {
			s.Enabled++
		}
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, marshal(s))
}

// serviceStats serves GET /statistics/service.
func (h *Hub) serviceStats(w http.ResponseWriter, _ *http.Request, _ *routed) {
	var s struct {
		Connected int `json:"connectedDeviceCount"`
	}
	h.mu.Lock()
	for _, d := range h.devices {
		if d.ep.online {
			s.Connected++
		}
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, marshal(s))
}
