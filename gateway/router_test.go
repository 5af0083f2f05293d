package gateway

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoute(t *testing.T) {
	calc := &lane{root: "/calculator", file: "calc.so"}
	deep := &lane{root: "/a/b", file: "ab.so"}
	a := &lane{root: "/a", file: "a.so"}
	all := &lane{root: "", file: "all.so"}

	tests := []struct {
		name  string
		lanes []*lane
		query string
		want  *lane
	}{
		{"root itself", []*lane{calc}, "/calculator", calc},
		{"below root", []*lane{calc}, "/calculator/value", calc},
		{"trailing slash", []*lane{calc}, "/calculator/", calc},
		{"double slash", []*lane{calc}, "/calculator//x", calc},
		{"prefix is not a segment", []*lane{calc}, "/calculatorX", nil},
		{"prefix is not a segment below", []*lane{calc}, "/calculatorX/value", nil},
		{"shorter than root", []*lane{calc}, "/calc", nil},
		{"case matters", []*lane{calc}, "/Calculator/value", nil},
		{"relative query", []*lane{calc}, "calculator/value", nil},
		{"empty query", []*lane{calc}, "", nil},
		{"slash only", []*lane{calc}, "/", nil},
		{"longest root wins", []*lane{a, deep}, "/a/b/c", deep},
		{"longest root wins, order independent", []*lane{deep, a}, "/a/b", deep},
		{"shorter root keeps the rest", []*lane{a, deep}, "/a/bc", a},
		{"shorter root keeps its own path", []*lane{a, deep}, "/a", a},
		{"catch-all takes the rest", []*lane{calc, all}, "/nothing", all},
		{"catch-all takes relative queries", []*lane{calc, all}, "nothing", all},
		{"catch-all takes empty queries", []*lane{calc, all}, "", all},
		{"catch-all yields to a root", []*lane{all, calc}, "/calculator/x", calc},
	}
	// Enough other roots force the hashed lookup that replaces the linear
	// scan of a few roots: both must route alike.
	var padding []*lane
	for i := range maxLinearRoots {
		padding = append(padding, &lane{root: fmt.Sprintf("/pad%d/x", i)})
	}
	for _, tt := range tests {
		for _, many := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/many=%v", tt.name, many), func(t *testing.T) {
				lanes := tt.lanes
				if many {
					lanes = append(slices.Clone(padding), lanes...)
				}
				r, err := newRouter(lanes, gatewayLane())
				require.NoError(t, err)
				assert.Equal(t, many, r.few == nil, "lookup strategy")
				assert.Same(t, tt.want, r.route([]byte(tt.query)))
			})
		}
	}
}

func TestRouterRefusesSharedRoots(t *testing.T) {
	_, err := newRouter([]*lane{{root: "/a", file: "one.so"}, {root: "/a", file: "two.so"}}, gatewayLane())
	require.ErrorContains(t, err, "one.so and two.so both claim root /a")
	_, err = newRouter([]*lane{{root: "", file: "one.so"}, {root: "", file: "two.so"}}, gatewayLane())
	require.ErrorContains(t, err, "one.so and two.so both claim the catch-all root")
}

func TestRouteAllocs(t *testing.T) {
	lanes := []*lane{{root: "/calculator"}, {root: "/a/b"}, {root: ""}}
	for i := range maxLinearRoots {
		few, err := newRouter(lanes, gatewayLane())
		require.NoError(t, err)
		q := []byte("/calculator/get_value")
		assert.Zero(t, testing.AllocsPerRun(100, func() { few.route(q) }))
		lanes = append(lanes, &lane{root: fmt.Sprintf("/pad%d", i)})
	}
	many, err := newRouter(lanes, gatewayLane())
	require.NoError(t, err)
	require.Nil(t, many.few)
	q := []byte("/calculator/get_value")
	assert.Zero(t, testing.AllocsPerRun(100, func() { many.route(q) }))
}

// gatewayLane stands for the gateway's own root, which every router has.
func gatewayLane() *lane { return &lane{root: ReservedRoot} }

func BenchmarkRoute(b *testing.B) {
	r, err := newRouter([]*lane{{root: "/calculator"}}, gatewayLane())
	require.NoError(b, err)
	q := []byte("/calculator/get_value")
	b.ReportAllocs()
	for b.Loop() {
		r.route(q)
	}
}
