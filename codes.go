package iothub

import "strconv"

// ErrorCode is IoT Hub's six-digit error code, such as 404103. Its first
// three digits are the HTTP status the hub answered with.
type ErrorCode int

// Error codes the SDK gives a name to. The list follows IoT Hub's documented
// table; a code that is not listed still round-trips as a number.
const (
	ErrorCodeGenericBadRequest                         ErrorCode = 400000
	ErrorCodeInvalidProtocolVersion                    ErrorCode = 400001
	ErrorCodeInvalidOperation                          ErrorCode = 400003
	ErrorCodeArgumentInvalid                           ErrorCode = 400004
	ErrorCodeArgumentNull                              ErrorCode = 400005
	ErrorCodeIotHubFormatError                         ErrorCode = 400006
	ErrorCodeDeviceDefinedMultipleTimes                ErrorCode = 400011
	ErrorCodeBulkRegistryOperationFailure              ErrorCode = 400013
	ErrorCodeEtagDoesNotMatch                          ErrorCode = 400023
	ErrorCodeConnectionForcefullyClosedOnNewConnection ErrorCode = 400027
	ErrorCodeGenericUnauthorized                       ErrorCode = 401000
	ErrorCodeIotHubNotFound                            ErrorCode = 401001
	ErrorCodeIotHubUnauthorizedAccess                  ErrorCode = 401002
	ErrorCodeIotHubUnauthorized                        ErrorCode = 401003
	ErrorCodeGenericForbidden                          ErrorCode = 403000
	ErrorCodeIotHubSuspended                           ErrorCode = 403001
	ErrorCodeIotHubQuotaExceeded                       ErrorCode = 403002
	ErrorCodeJobQuotaExceeded                          ErrorCode = 403003
	ErrorCodeDeviceMaximumQueueDepthExceeded           ErrorCode = 403004
	ErrorCodeOperationNotAvailableInCurrentTier        ErrorCode = 403010
	ErrorCodeDeviceMaximumInflightMethodExceeded       ErrorCode = 403800
	ErrorCodeDeviceNotFound                            ErrorCode = 404001
	ErrorCodeJobNotFound                               ErrorCode = 404002
	ErrorCodeModuleNotFound                            ErrorCode = 404010
	ErrorCodeDeviceNotOnline                           ErrorCode = 404103
	ErrorCodeDeviceConnectionClosedRemotely            ErrorCode = 404104
	ErrorCodeConfigurationNotFound                     ErrorCode = 404301
	ErrorCodeGenericMethodNotAllowed                   ErrorCode = 405000
	ErrorCodeRequestTimeout                            ErrorCode = 408000
	ErrorCodeGenericConflict                           ErrorCode = 409000
	ErrorCodeDeviceAlreadyExists                       ErrorCode = 409001
	ErrorCodeDeviceJobAlreadyExists                    ErrorCode = 409103
	ErrorCodeJobAlreadyExists                          ErrorCode = 409104
	ErrorCodeModuleAlreadyExistsOnDevice               ErrorCode = 409301
	ErrorCodeGenericPreconditionFailed                 ErrorCode = 412000
	ErrorCodePreconditionFailed                        ErrorCode = 412001
	ErrorCodeDeviceMessageLockLost                     ErrorCode = 412002
	ErrorCodeJobRunPreconditionFailed                  ErrorCode = 412003
	ErrorCodeGenericRequestEntityTooLarge              ErrorCode = 413000
	ErrorCodeMessageTooLarge                           ErrorCode = 413001
	ErrorCodeTooManyDevices                            ErrorCode = 413002
	ErrorCodeTooManyModulesOnDevice                    ErrorCode = 413003
	ErrorCodeGenericUnsupportedMediaType               ErrorCode = 415000
	ErrorCodeGenericTooManyRequests                    ErrorCode = 429000
	ErrorCodeThrottlingException                       ErrorCode = 429001
	ErrorCodeThrottleBacklogLimitExceeded              ErrorCode = 429002
	ErrorCodeThrottlingBacklogTimeout                  ErrorCode = 429003
	ErrorCodeThrottlingMaxActiveJobCountExceeded       ErrorCode = 429004
	ErrorCodeDeviceThrottlingLimitExceeded             ErrorCode = 429005
	ErrorCodeClientClosedRequest                       ErrorCode = 499000
	ErrorCodeServerError                               ErrorCode = 500001
	ErrorCodeJobCancelled                              ErrorCode = 500002
	ErrorCodeGenericTimeout                            ErrorCode = 500008
	ErrorCodeGenericBadGateway                         ErrorCode = 502000
	ErrorCodeGenericServiceUnavailable                 ErrorCode = 503000
	ErrorCodeServiceUnavailable                        ErrorCode = 503001
	ErrorCodePartitionNotFound                         ErrorCode = 503003
	ErrorCodeServerBusy                                ErrorCode = 503005
	ErrorCodeGenericGatewayTimeout                     ErrorCode = 504000
	ErrorCodeGatewayTimeout                            ErrorCode = 504101
)

var codeNames = map[ErrorCode]string{
	ErrorCodeGenericBadRequest:                         "GenericBadRequest",
	ErrorCodeInvalidProtocolVersion:                    "InvalidProtocolVersion",
	ErrorCodeInvalidOperation:                          "InvalidOperation",
	ErrorCodeArgumentInvalid:                           "ArgumentInvalid",
	ErrorCodeArgumentNull:                              "ArgumentNull",
	ErrorCodeIotHubFormatError:                         "IotHubFormatError",
	ErrorCodeDeviceDefinedMultipleTimes:                "DeviceDefinedMultipleTimes",
	ErrorCodeBulkRegistryOperationFailure:              "BulkRegistryOperationFailure",
	ErrorCodeEtagDoesNotMatch:                          "EtagDoesNotMatch",
	ErrorCodeConnectionForcefullyClosedOnNewConnection: "ConnectionForcefullyClosedOnNewConnection",
	ErrorCodeGenericUnauthorized:                       "GenericUnauthorized",
	ErrorCodeIotHubNotFound:                            "IotHubNotFound",
	ErrorCodeIotHubUnauthorizedAccess:                  "IotHubUnauthorizedAccess",
	ErrorCodeIotHubUnauthorized:                        "IotHubUnauthorized",
	ErrorCodeGenericForbidden:                          "GenericForbidden",
	ErrorCodeIotHubSuspended:                           "IotHubSuspended",
	ErrorCodeIotHubQuotaExceeded:                       "IotHubQuotaExceeded",
	ErrorCodeJobQuotaExceeded:                          "JobQuotaExceeded",
	ErrorCodeDeviceMaximumQueueDepthExceeded:           "DeviceMaximumQueueDepthExceeded",
	ErrorCodeOperationNotAvailableInCurrentTier:        "OperationNotAvailableInCurrentTier",
	ErrorCodeDeviceMaximumInflightMethodExceeded:       "DeviceMaximumInflightMethodExceeded",
	ErrorCodeDeviceNotFound:                            "DeviceNotFound",
	ErrorCodeJobNotFound:                               "JobNotFound",
	ErrorCodeModuleNotFound:                            "ModuleNotFound",
	ErrorCodeDeviceNotOnline:                           "DeviceNotOnline",
	ErrorCodeDeviceConnectionClosedRemotely:            "DeviceConnectionClosedRemotely",
	ErrorCodeConfigurationNotFound:                     "ConfigurationNotFound",
	ErrorCodeGenericMethodNotAllowed:                   "GenericMethodNotAllowed",
	ErrorCodeRequestTimeout:                            "RequestTimeout",
	ErrorCodeGenericConflict:                           "GenericConflict",
	ErrorCodeDeviceAlreadyExists:                       "DeviceAlreadyExists",
	ErrorCodeDeviceJobAlreadyExists:                    "DeviceJobAlreadyExists",
	ErrorCodeJobAlreadyExists:                          "JobAlreadyExists",
	ErrorCodeModuleAlreadyExistsOnDevice:               "ModuleAlreadyExistsOnDevice",
	ErrorCodeGenericPreconditionFailed:                 "GenericPreconditionFailed",
	ErrorCodePreconditionFailed:                        "PreconditionFailed",
	ErrorCodeDeviceMessageLockLost:                     "DeviceMessageLockLost",
	ErrorCodeJobRunPreconditionFailed:                  "JobRunPreconditionFailed",
	ErrorCodeGenericRequestEntityTooLarge:              "GenericRequestEntityTooLarge",
	ErrorCodeMessageTooLarge:                           "MessageTooLarge",
	ErrorCodeTooManyDevices:                            "TooManyDevices",
	ErrorCodeTooManyModulesOnDevice:                    "TooManyModulesOnDevice",
	ErrorCodeGenericUnsupportedMediaType:               "GenericUnsupportedMediaType",
	ErrorCodeGenericTooManyRequests:                    "GenericTooManyRequests",
	ErrorCodeThrottlingException:                       "ThrottlingException",
	ErrorCodeThrottleBacklogLimitExceeded:              "ThrottleBacklogLimitExceeded",
	ErrorCodeThrottlingBacklogTimeout:                  "ThrottlingBacklogTimeout",
	ErrorCodeThrottlingMaxActiveJobCountExceeded:       "ThrottlingMaxActiveJobCountExceeded",
	ErrorCodeDeviceThrottlingLimitExceeded:             "DeviceThrottlingLimitExceeded",
	ErrorCodeClientClosedRequest:                       "ClientClosedRequest",
	ErrorCodeServerError:                               "ServerError",
	ErrorCodeJobCancelled:                              "JobCancelled",
	ErrorCodeGenericTimeout:                            "GenericTimeout",
	ErrorCodeGenericBadGateway:                         "GenericBadGateway",
	ErrorCodeGenericServiceUnavailable:                 "GenericServiceUnavailable",
	ErrorCodeServiceUnavailable:                        "ServiceUnavailable",
	ErrorCodePartitionNotFound:                         "PartitionNotFound",
	ErrorCodeServerBusy:                                "ServerBusy",
	ErrorCodeGenericGatewayTimeout:                     "GenericGatewayTimeout",
	ErrorCodeGatewayTimeout:                            "GatewayTimeout",
}

// codesByName is the reverse of codeNames, for bodies and headers that carry
// a code's name instead of its number.
var codesByName = func() map[string]ErrorCode {
	m := make(map[string]ErrorCode, len(codeNames))
	for c, n := range codeNames {
		m[n] = c
	}
	return m
}()

// Name returns the code's name as IoT Hub spells it (for example
// "DeviceNotOnline"), or "" for a code the SDK does not know.
func (c ErrorCode) Name() string { return codeNames[c] }

// HTTPStatus returns the HTTP status encoded in the code's first three digits.
func (c ErrorCode) HTTPStatus() int {
	if c < 100000 || c > 599999 {
		return 0
	}
	return int(c) / 1000
}

// String returns the code and its name, as in "404103 DeviceNotOnline".
func (c ErrorCode) String() string {
	s := strconv.Itoa(int(c))
	if n := c.Name(); n != "" {
		return s + " " + n
	}
	return s
}

// ParseErrorCode returns the code named by s, which may be a number
// ("404103") or a name ("DeviceNotOnline", matched exactly as IoT Hub spells
// it). It reports false when s is neither.
func ParseErrorCode(s string) (ErrorCode, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n >= 100000 && n <= 599999 {
			return ErrorCode(n), true
		}
		return 0, false
	}
	c, ok := codesByName[s]
	return c, ok
}
