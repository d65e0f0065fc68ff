package iothub

import "strconv"

// ErrorCode is IoT Hub's six-digit error code, such as 404103. Its first
// three digits are the HTTP status the hub answered with.
type ErrorCode int

// Error codes the SDK gives a name to. The list follows IoT Hub's documented
// table; a code that is not listed still round-trips as a number.
const (
	CodeGenericBadRequest                         ErrorCode = 400000
	CodeInvalidProtocolVersion                    ErrorCode = 400001
	CodeInvalidOperation                          ErrorCode = 400003
	CodeArgumentInvalid                           ErrorCode = 400004
	CodeArgumentNull                              ErrorCode = 400005
	CodeIotHubFormatError                         ErrorCode = 400006
	CodeDeviceDefinedMultipleTimes                ErrorCode = 400011
	CodeBulkRegistryOperationFailure              ErrorCode = 400013
	CodeEtagDoesNotMatch                          ErrorCode = 400023
	CodeConnectionForcefullyClosedOnNewConnection ErrorCode = 400027
	CodeGenericUnauthorized                       ErrorCode = 401000
	CodeIotHubNotFound                            ErrorCode = 401001
	CodeIotHubUnauthorizedAccess                  ErrorCode = 401002
	CodeIotHubUnauthorized                        ErrorCode = 401003
	CodeGenericForbidden                          ErrorCode = 403000
	CodeIotHubSuspended                           ErrorCode = 403001
	CodeIotHubQuotaExceeded                       ErrorCode = 403002
	CodeJobQuotaExceeded                          ErrorCode = 403003
	CodeDeviceMaximumQueueDepthExceeded           ErrorCode = 403004
	CodeOperationNotAvailableInCurrentTier        ErrorCode = 403010
	CodeDeviceMaximumInflightMethodExceeded       ErrorCode = 403800
	CodeDeviceNotFound                            ErrorCode = 404001
	CodeJobNotFound                               ErrorCode = 404002
	CodeModuleNotFound                            ErrorCode = 404010
	CodeDeviceNotOnline                           ErrorCode = 404103
	CodeDeviceConnectionClosedRemotely            ErrorCode = 404104
	CodeConfigurationNotFound                     ErrorCode = 404301
	CodeGenericMethodNotAllowed                   ErrorCode = 405000
	CodeRequestTimeout                            ErrorCode = 408000
	CodeGenericConflict                           ErrorCode = 409000
	CodeDeviceAlreadyExists                       ErrorCode = 409001
	CodeDeviceJobAlreadyExists                    ErrorCode = 409103
	CodeJobAlreadyExists                          ErrorCode = 409104
	CodeModuleAlreadyExistsOnDevice               ErrorCode = 409301
	CodeGenericPreconditionFailed                 ErrorCode = 412000
	CodePreconditionFailed                        ErrorCode = 412001
	CodeDeviceMessageLockLost                     ErrorCode = 412002
	CodeJobRunPreconditionFailed                  ErrorCode = 412003
	CodeGenericRequestEntityTooLarge              ErrorCode = 413000
	CodeMessageTooLarge                           ErrorCode = 413001
	CodeTooManyDevices                            ErrorCode = 413002
	CodeTooManyModulesOnDevice                    ErrorCode = 413003
	CodeGenericUnsupportedMediaType               ErrorCode = 415000
	CodeGenericTooManyRequests                    ErrorCode = 429000
	CodeThrottlingException                       ErrorCode = 429001
	CodeThrottleBacklogLimitExceeded              ErrorCode = 429002
	CodeThrottlingBacklogTimeout                  ErrorCode = 429003
	CodeThrottlingMaxActiveJobCountExceeded       ErrorCode = 429004
	CodeDeviceThrottlingLimitExceeded             ErrorCode = 429005
	CodeClientClosedRequest                       ErrorCode = 499000
	CodeServerError                               ErrorCode = 500001
	CodeJobCancelled                              ErrorCode = 500002
	CodeGenericTimeout                            ErrorCode = 500008
	CodeGenericBadGateway                         ErrorCode = 502000
	CodeGenericServiceUnavailable                 ErrorCode = 503000
	CodeServiceUnavailable                        ErrorCode = 503001
	CodePartitionNotFound                         ErrorCode = 503003
	CodeServerBusy                                ErrorCode = 503005
	CodeGenericGatewayTimeout                     ErrorCode = 504000
	CodeGatewayTimeout                            ErrorCode = 504101
)

var codeNames = map[ErrorCode]string{
	CodeGenericBadRequest:                         "GenericBadRequest",
	CodeInvalidProtocolVersion:                    "InvalidProtocolVersion",
	CodeInvalidOperation:                          "InvalidOperation",
	CodeArgumentInvalid:                           "ArgumentInvalid",
	CodeArgumentNull:                              "ArgumentNull",
	CodeIotHubFormatError:                         "IotHubFormatError",
	CodeDeviceDefinedMultipleTimes:                "DeviceDefinedMultipleTimes",
	CodeBulkRegistryOperationFailure:              "BulkRegistryOperationFailure",
	CodeEtagDoesNotMatch:                          "EtagDoesNotMatch",
	CodeConnectionForcefullyClosedOnNewConnection: "ConnectionForcefullyClosedOnNewConnection",
	CodeGenericUnauthorized:                       "GenericUnauthorized",
	CodeIotHubNotFound:                            "IotHubNotFound",
	CodeIotHubUnauthorizedAccess:                  "IotHubUnauthorizedAccess",
	CodeIotHubUnauthorized:                        "IotHubUnauthorized",
	CodeGenericForbidden:                          "GenericForbidden",
	CodeIotHubSuspended:                           "IotHubSuspended",
	CodeIotHubQuotaExceeded:                       "IotHubQuotaExceeded",
	CodeJobQuotaExceeded:                          "JobQuotaExceeded",
	CodeDeviceMaximumQueueDepthExceeded:           "DeviceMaximumQueueDepthExceeded",
	CodeOperationNotAvailableInCurrentTier:        "OperationNotAvailableInCurrentTier",
	CodeDeviceMaximumInflightMethodExceeded:       "DeviceMaximumInflightMethodExceeded",
	CodeDeviceNotFound:                            "DeviceNotFound",
	CodeJobNotFound:                               "JobNotFound",
	CodeModuleNotFound:                            "ModuleNotFound",
	CodeDeviceNotOnline:                           "DeviceNotOnline",
	CodeDeviceConnectionClosedRemotely:            "DeviceConnectionClosedRemotely",
	CodeConfigurationNotFound:                     "ConfigurationNotFound",
	CodeGenericMethodNotAllowed:                   "GenericMethodNotAllowed",
	CodeRequestTimeout:                            "RequestTimeout",
	CodeGenericConflict:                           "GenericConflict",
	CodeDeviceAlreadyExists:                       "DeviceAlreadyExists",
	CodeDeviceJobAlreadyExists:                    "DeviceJobAlreadyExists",
	CodeJobAlreadyExists:                          "JobAlreadyExists",
	CodeModuleAlreadyExistsOnDevice:               "ModuleAlreadyExistsOnDevice",
	CodeGenericPreconditionFailed:                 "GenericPreconditionFailed",
	CodePreconditionFailed:                        "PreconditionFailed",
	CodeDeviceMessageLockLost:                     "DeviceMessageLockLost",
	CodeJobRunPreconditionFailed:                  "JobRunPreconditionFailed",
	CodeGenericRequestEntityTooLarge:              "GenericRequestEntityTooLarge",
	CodeMessageTooLarge:                           "MessageTooLarge",
	CodeTooManyDevices:                            "TooManyDevices",
	CodeTooManyModulesOnDevice:                    "TooManyModulesOnDevice",
	CodeGenericUnsupportedMediaType:               "GenericUnsupportedMediaType",
	CodeGenericTooManyRequests:                    "GenericTooManyRequests",
	CodeThrottlingException:                       "ThrottlingException",
	CodeThrottleBacklogLimitExceeded:              "ThrottleBacklogLimitExceeded",
	CodeThrottlingBacklogTimeout:                  "ThrottlingBacklogTimeout",
	CodeThrottlingMaxActiveJobCountExceeded:       "ThrottlingMaxActiveJobCountExceeded",
	CodeDeviceThrottlingLimitExceeded:             "DeviceThrottlingLimitExceeded",
	CodeClientClosedRequest:                       "ClientClosedRequest",
	CodeServerError:                               "ServerError",
	CodeJobCancelled:                              "JobCancelled",
	CodeGenericTimeout:                            "GenericTimeout",
	CodeGenericBadGateway:                         "GenericBadGateway",
	CodeGenericServiceUnavailable:                 "GenericServiceUnavailable",
	CodeServiceUnavailable:                        "ServiceUnavailable",
	CodePartitionNotFound:                         "PartitionNotFound",
	CodeServerBusy:                                "ServerBusy",
	CodeGenericGatewayTimeout:                     "GenericGatewayTimeout",
	CodeGatewayTimeout:                            "GatewayTimeout",
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
