package repe

import "strconv"

// ErrorCode is the ec field of a REPE header: 0 on success, otherwise the
// reason for the failure. Codes 0–9 are the REPE specification's; Glaze sends
// its JSON and BEVE read errors (12 and up) on the wire as they are
// (REPE.md §1.2). The specification leaves codes ≥ 4096 to applications.
//
// ErrorCode implements error so that errors.Is(err, repe.MethodNotFound)
// matches any *Error carrying that code.
type ErrorCode uint32

// The REPE specification's error codes.
const (
	OK                ErrorCode = 0
	VersionMismatch   ErrorCode = 1
	InvalidHeader     ErrorCode = 2
	InvalidQuery      ErrorCode = 3
	InvalidBody       ErrorCode = 4
	ParseError        ErrorCode = 5
	MethodNotFound    ErrorCode = 6
	Timeout           ErrorCode = 7
	SendError         ErrorCode = 8
	ConnectionFailure ErrorCode = 9
)

// Glaze's read and call errors that a Glaze registry or plugin puts in ec
// (REPE.md §1.2, §3.4). Their numbers hold since Glaze v6.0.0.
const (
	NoReadInput               ErrorCode = 12
	ParseNumberFailure        ErrorCode = 14
	ExpectedBrace             ErrorCode = 15
	ExpectedBracket           ErrorCode = 16
	ExpectedQuote             ErrorCode = 17
	ExpectedComma             ErrorCode = 18
	ExpectedColon             ErrorCode = 19
	ExceededStaticArraySize   ErrorCode = 20
	ExceededMaxRecursiveDepth ErrorCode = 21
	UnexpectedEnd             ErrorCode = 22
	SyntaxError               ErrorCode = 24
	UnexpectedEnum            ErrorCode = 25
	NoMatchingVariantType     ErrorCode = 33
	ExpectedTrueOrFalse       ErrorCode = 34
	ConstraintViolated        ErrorCode = 35
	KeyNotFound               ErrorCode = 36
	UnknownKey                ErrorCode = 37
	MissingKey                ErrorCode = 38
	InvalidEscape             ErrorCode = 40
	InvalidCall               ErrorCode = 55
	InvalidLength             ErrorCode = 68
	InvalidUTF8               ErrorCode = 69
)

// errorCodeNames holds Glaze's names for its error_code enum
// (include/glaze/core/error_category.hpp), indexed by code. Glaze clients
// print these names; an empty entry is a code whose name is not known here.
var errorCodeNames = [...]string{
	"none", "version_mismatch", "invalid_header", "invalid_query", "invalid_body",
	"parse_error", "method_not_found", "timeout", "send_error", "connection_failure",
	"end_reached", "partial_read_complete", "no_read_input", "data_must_be_null_terminated",
	"parse_number_failure", "expected_brace", "expected_bracket", "expected_quote",
	"expected_comma", "expected_colon", "exceeded_static_array_size",
	"exceeded_max_recursive_depth", "unexpected_end", "expected_end_comment",
	"syntax_error", "unexpected_enum", "attempt_const_read", "attempt_member_func_read",
	"attempt_read_hidden", "invalid_nullable_read", "invalid_variant_object",
	"invalid_variant_array", "invalid_variant_string", "no_matching_variant_type",
	"expected_true_or_false", "constraint_violated", "key_not_found", "unknown_key",
	"missing_key", "invalid_flag_input", "invalid_escape", "u_requires_hex_digits",
	"unicode_escape_conversion_failure", "dump_int_error", "file_open_failure",
	"file_close_failure", "file_include_error", "file_extension_not_supported",
	"could_not_determine_extension", "nonexistent_json_ptr", "get_wrong_type",
	"seek_failure", "cannot_be_referenced", "invalid_get", "invalid_get_fn",
	"invalid_call", "invalid_partial_key", "name_mismatch", "array_element_not_found",
	"elements_not_convertible_to_design", "unknown_distribution",
	"invalid_distribution_elements", "hostname_failure", "includer_error",
	"feature_not_supported", "invalid_json_pointer", "patch_test_failed",
	"buffer_overflow", "invalid_length",
	69: "invalid_utf8",
	72: "exceeded_max_expansion",
}

// Name returns Glaze's name for c ("method_not_found"), or "" when the code
// has no known name. Codes at and above 4096 belong to applications.
func (c ErrorCode) Name() string {
	if int(c) < len(errorCodeNames) {
		return errorCodeNames[c]
	}
	return ""
}

// String returns Glaze's name for c, or "ec <n>" for a code without one.
func (c ErrorCode) String() string {
	if name := c.Name(); name != "" {
		return name
	}
	return "ec " + strconv.FormatUint(uint64(c), 10)
}

// Error implements error.
func (c ErrorCode) Error() string { return "repe: " + c.String() }

// QueryFormat is the query_format field of a REPE header.
type QueryFormat uint16

// Query formats of the REPE specification. Values up to 4095 are reserved
// for it; Glaze ignores the field when routing.
const (
	QueryRaw         QueryFormat = 0
	QueryJSONPointer QueryFormat = 1
)

// String returns the format's name, or its number when it has none.
func (f QueryFormat) String() string {
	switch f {
	case QueryRaw:
		return "raw"
	case QueryJSONPointer:
		return "json_pointer"
	}
	return strconv.FormatUint(uint64(f), 10)
}

// BodyFormat is the body_format field of a REPE header.
type BodyFormat uint16

// Body formats of the REPE specification. Values up to 4095 are reserved for
// it.
const (
	BodyRaw  BodyFormat = 0
	BodyBEVE BodyFormat = 1
	BodyJSON BodyFormat = 2
	BodyUTF8 BodyFormat = 3
)

// String returns the format's name, or its number when it has none.
func (f BodyFormat) String() string {
	switch f {
	case BodyRaw:
		return "raw"
	case BodyBEVE:
		return "beve"
	case BodyJSON:
		return "json"
	case BodyUTF8:
		return "utf8"
	}
	return strconv.FormatUint(uint64(f), 10)
}
