package service_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hubkit/iothub/registry"
	"github.com/hubkit/iothub/service"
)

// TestTimestampsWrittenAsRegistryWritesThem checks that a job's times are
// read and written exactly as registry.Time reads and writes them: one
// timestamp format in the SDK.
func TestTimestampsWrittenAsRegistryWritesThem(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`"2019-05-04T15:53:00.0770000Z"`, `"2019-05-04T15:53:00.077Z"`, `"2020-07-17T06:12:26.8402249"`,
		`"2020-07-17T06:12:26"`, `"2020-07-17T08:12:26.5+02:00"`,
	} {
		var rt registry.Time
		if err := json.Unmarshal([]byte(in), &rt); err != nil {
			t.Fatalf("registry.Time %s: %v", in, err)
		}
		var job service.Job
		if err := json.Unmarshal([]byte(`{"jobId":"j","createdTime":`+in+`}`), &job); err != nil {
			t.Fatalf("Job.createdTime %s: %v", in, err)
		}
		if !job.CreatedTime.Equal(rt.Time) {
			t.Errorf("%s: job reads %v, registry reads %v", in, job.CreatedTime, rt.Time)
		}
		want, _ := json.Marshal(rt)
		b, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			CreatedTime json.RawMessage `json:"createdTime"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if string(got.CreatedTime) != string(want) {
			t.Errorf("%s: job writes %s, registry writes %s", in, got.CreatedTime, want)
		}
	}
	// "Never" reads as the zero time in both.
	var job service.Job
	if err := json.Unmarshal([]byte(`{"jobId":"j","endTime":"0001-01-01T00:00:00"}`), &job); err != nil || job.EndTime != (time.Time{}) {
		t.Errorf("never: %v, %v", job.EndTime, err)
	}
}
