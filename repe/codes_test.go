package repe_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/repe-gw/repe-gw/repe"
)

// TestErrorCodeNames checks the names against Glaze's error_code keys
// (include/glaze/core/error_category.hpp) at the codes REPE.md §1.2 lists.
func TestErrorCodeNames(t *testing.T) {
	tests := []struct {
		code repe.ErrorCode
		name string
	}{
		{repe.OK, "none"},
		{repe.VersionMismatch, "version_mismatch"},
		{repe.InvalidHeader, "invalid_header"},
		{repe.InvalidQuery, "invalid_query"},
		{repe.InvalidBody, "invalid_body"},
		{repe.ParseError, "parse_error"},
		{repe.MethodNotFound, "method_not_found"},
		{repe.Timeout, "timeout"},
		{repe.SendError, "send_error"},
		{repe.ConnectionFailure, "connection_failure"},
		{10, "end_reached"},
		{repe.NoReadInput, "no_read_input"},
		{repe.ParseNumberFailure, "parse_number_failure"},
		{repe.ExpectedBrace, "expected_brace"},
		{repe.ExpectedBracket, "expected_bracket"},
		{repe.ExpectedQuote, "expected_quote"},
		{repe.ExpectedComma, "expected_comma"},
		{repe.ExpectedColon, "expected_colon"},
		{repe.ExceededStaticArraySize, "exceeded_static_array_size"},
		{repe.ExceededMaxRecursiveDepth, "exceeded_max_recursive_depth"},
		{repe.UnexpectedEnd, "unexpected_end"},
		{repe.SyntaxError, "syntax_error"},
		{repe.UnexpectedEnum, "unexpected_enum"},
		{repe.NoMatchingVariantType, "no_matching_variant_type"},
		{repe.ExpectedTrueOrFalse, "expected_true_or_false"},
		{repe.ConstraintViolated, "constraint_violated"},
		{repe.KeyNotFound, "key_not_found"},
		{repe.UnknownKey, "unknown_key"},
		{repe.MissingKey, "missing_key"},
		{repe.InvalidEscape, "invalid_escape"},
		{repe.InvalidCall, "invalid_call"},
		{66, "patch_test_failed"},
		{67, "buffer_overflow"},
		{repe.InvalidLength, "invalid_length"},
		{repe.InvalidUTF8, "invalid_utf8"},
		{72, "exceeded_max_expansion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.name, tt.code.Name())
			assert.Equal(t, tt.name, tt.code.String())
			assert.Equal(t, "repe: "+tt.name, tt.code.Error())
		})
	}
}

func TestErrorCodeWithoutName(t *testing.T) {
	for _, c := range []repe.ErrorCode{70, 71, 73, 4095, 4096, 1 << 31} {
		assert.Empty(t, c.Name(), "code %d", uint32(c))
	}
	assert.Equal(t, "ec 4096", repe.ErrorCode(4096).String())
	assert.Equal(t, "repe: ec 70", repe.ErrorCode(70).Error())
}

func TestFormatNames(t *testing.T) {
	assert.Equal(t, "raw", repe.QueryRaw.String())
	assert.Equal(t, "json_pointer", repe.QueryJSONPointer.String())
	assert.Equal(t, "9999", repe.QueryFormat(9999).String())
	assert.Equal(t, "raw", repe.BodyRaw.String())
	assert.Equal(t, "beve", repe.BodyBEVE.String())
	assert.Equal(t, "json", repe.BodyJSON.String())
	assert.Equal(t, "utf8", repe.BodyUTF8.String())
	assert.Equal(t, "4096", repe.BodyFormat(4096).String())
}
