-- wrk script: PATCH one field of a random document among 5,000 (the single-node workload).
-- Usage: statemesh start --data-dir /tmp/bench-node & wrk -t2 -c64 -d5s --latency \
--          -s benches/wrk/patch.lua http://127.0.0.1:7700
counter = 0
request = function()
  counter = counter + 1
  local doc = math.random(0, 4999)
  local path = string.format("/v1/docs/bench/doc-%07d", doc)
  return wrk.format("PATCH", path, {["Content-Type"]="application/merge-patch+json"}, string.format('{"counter": %d}', counter))
end
