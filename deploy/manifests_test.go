package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifests reads every document of every file in kubernetes/, each
// decoded strictly into the k8s.io/api type its kind names: a field the
// API does not have, a misspelt one say, is an error, as kubectl apply
// --validate=strict would make it.
func manifests(t *testing.T) map[string]any {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	got := map[string]any{}
	for _, f := range files {
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		docs := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(text)))
		for {
			doc, err := docs.Read()
			if err == io.EOF {
				break
			}
			require.NoError(t, err, f)
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var meta struct{ Kind string }
			require.NoError(t, yaml.Unmarshal(doc, &meta), f)
			var obj any
			switch meta.Kind {
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Service":
				obj = &corev1.Service{}
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			case "HorizontalPodAutoscaler":
				obj = &autoscalingv2.HorizontalPodAutoscaler{}
			default:
				t.Fatalf("%s: kind %q has no test", f, meta.Kind)
			}
			require.NoError(t, yaml.UnmarshalStrict(doc, obj), f)
			got[meta.Kind] = obj
		}
	}
	return got
}

func TestManifests(t *testing.T) {
	m := manifests(t)
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		require.Contains(t, m, kind)
	}
	d := m["Deployment"].(*appsv1.Deployment)
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}

	t.Run("probes ask the admin listener its real paths", func(t *testing.T) {
		conf := m["ConfigMap"].(*corev1.ConfigMap).Data["repe-gw.yaml"]
		var file struct {
			Listen struct{ Addr string }
			Admin  struct {
				Addr      string
				TokenFile string `json:"token_file"`
			}
			Limits struct {
				ShutdownTimeout string `json:"shutdown_timeout"`
				ShutdownDelay   string `json:"shutdown_delay"`
			}
		}
		require.NoError(t, yaml.Unmarshal([]byte(conf), &file))
		assert.Equal(t, ":9099", file.Admin.Addr)
		assert.Equal(t, int32(9099), ports["admin"])
		assert.Equal(t, ":5099", file.Listen.Addr)
		assert.Equal(t, int32(5099), ports["repe"])
		// The paths the admin listener serves without the token (admin's
		// README table): /readyz for readiness, /healthz for liveness.
		for probe, want := range map[*corev1.Probe]string{
			c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz", c.StartupProbe: "/healthz",
		} {
			require.NotNil(t, probe)
			require.NotNil(t, probe.HTTPGet)
			assert.Equal(t, want, probe.HTTPGet.Path)
			assert.Equal(t, "admin", probe.HTTPGet.Port.StrVal)
		}
		// The token file the configuration names is where the pod puts it.
		var mounted bool
		for _, v := range c.VolumeMounts {
			mounted = mounted || strings.HasPrefix(file.Admin.TokenFile, v.MountPath+"/")
		}
		assert.True(t, mounted, "token_file %s is on no volume of the container", file.Admin.TokenFile)
		// Plugins load from private copies under $TMPDIR, on a read-only root.
		assert.True(t, slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool {
			return v.MountPath == "/tmp" && !v.ReadOnly
		}), "no writable /tmp for the plugins' private copies")

		t.Run("the grace period fits the drain", func(t *testing.T) {
			require.NotNil(t, c.Lifecycle)
			require.NotNil(t, c.Lifecycle.PreStop)
			require.NotNil(t, c.Lifecycle.PreStop.Sleep)
			drain := c.Lifecycle.PreStop.Sleep.Seconds + seconds(t, file.Limits.ShutdownDelay) + seconds(t, file.Limits.ShutdownTimeout)
			require.NotNil(t, pod.TerminationGracePeriodSeconds)
			assert.Greater(t, *pod.TerminationGracePeriodSeconds, drain)
		})
	})

	t.Run("secrets are mounted readable by their owner only", func(t *testing.T) {
		var secrets int
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				secrets++
				require.NotNil(t, v.Secret.DefaultMode, v.Name)
				assert.Equal(t, int32(0o400), *v.Secret.DefaultMode, v.Name)
			}
		}
		assert.Positive(t, secrets)
	})

	t.Run("resources and the autoscaler", func(t *testing.T) {
		assert.False(t, c.Resources.Requests.Cpu().IsZero(), "the HPA's utilisation is of the CPU request")
		assert.False(t, c.Resources.Limits.Memory().IsZero())
		h := m["HorizontalPodAutoscaler"].(*autoscalingv2.HorizontalPodAutoscaler)
		assert.Equal(t, d.Name, h.Spec.ScaleTargetRef.Name)
		require.Len(t, h.Spec.Metrics, 1)
		assert.Equal(t, corev1.ResourceCPU, h.Spec.Metrics[0].Resource.Name)
	})

	t.Run("the Service and the budget select the pods", func(t *testing.T) {
		labels := d.Spec.Template.Labels
		s := m["Service"].(*corev1.Service)
		for k, v := range s.Spec.Selector {
			assert.Equal(t, v, labels[k])
		}
		assert.Equal(t, "repe", s.Spec.Ports[0].TargetPort.StrVal)
		p := m["PodDisruptionBudget"].(*policyv1.PodDisruptionBudget)
		for k, v := range p.Spec.Selector.MatchLabels {
			assert.Equal(t, v, labels[k])
		}
	})
}

// seconds reads a whole number of seconds written as Go writes durations.
func seconds(t *testing.T, d string) int64 {
	t.Helper()
	var n int64
	_, err := fmt.Sscanf(d, "%ds", &n)
	require.NoError(t, err, "duration %q", d)
	return n
}
