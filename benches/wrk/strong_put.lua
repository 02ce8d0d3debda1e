-- wrk script: statemesh document writes, PUT /v1/docs/bench/{key}?consistency=strong
-- (through Raft), or the same request without the parameter (the eventual path: the
-- benchmark's `bench` namespace is declared eventual).
--
-- Keys: 8 bytes, `k` and 7 digits, drawn uniformly from the first KEYS keys
-- (`k0000000`..`k0009999` by default). Values: 256 bytes, different on every request: the
-- thread's id and a per-thread counter (16 hex characters), then 240 random characters
-- taken at a random offset from a pool each thread fills when it starts. The body is
-- {"v":"<value>"}.
--
-- Settings, as wrk script arguments (after `--`) or environment variables:
--   keys=N                  BENCH_KEYS          key space (default 10000)
--   consistency=strong      BENCH_CONSISTENCY   `strong` adds ?consistency=strong;
--                                               `eventual` or `none` sends no parameter
--   seed=N                  BENCH_SEED          base of each thread's random seed
--                                               (default the time; thread i uses base + i)
-- Usage (scripts/bench-wrk does this against a 3-voter cluster's leader):
--   wrk -t2 -c64 -d8s --latency -s benches/wrk/strong_put.lua http://127.0.0.1:7700 \
--       -- keys=10000 consistency=strong
-- No response() callback: defining one makes wrk parse every response body.

local VALUE_BYTES = 256
local PREFIX_BYTES = 16 -- "%04x%012x": thread id, counter
local POOL_BYTES = 1024
local ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require("common")
setup = common.setup

local keys, query, pool, headers
local counter = 0
local tid = 0

function init(args)
  tid = thread_id or 0
  keys = common.keys(args)
  local consistency = common.setting(args, "consistency", "BENCH_CONSISTENCY", "strong")
  if consistency == "strong" then
    query = "?consistency=strong"
  elseif consistency == "eventual" or consistency == "none" or consistency == "" then
    query = ""
  else
    error("consistency must be strong, eventual or none, not `" .. consistency .. "`")
  end
  common.seed(args, tid)
  local chars = {}
  for i = 1, POOL_BYTES do
    local c = math.random(1, #ALPHABET)
    chars[i] = ALPHABET:sub(c, c)
  end
  pool = table.concat(chars)
  headers = { ["Content-Type"] = "application/json" }
end

local FILL = VALUE_BYTES - PREFIX_BYTES

function request()
  counter = counter + 1
  local key = string.format("k%07d", math.random(0, keys - 1))
  local offset = math.random(1, POOL_BYTES - FILL + 1)
  local value = string.format("%04x%012x", tid % 65536, counter) .. pool:sub(offset, offset + FILL - 1)
  return wrk.format("PUT", "/v1/docs/bench/" .. key .. query, headers, '{"v":"' .. value .. '"}')
end
