-- wrk script: etcd 3.4 writes through its JSON gateway, POST /v3/kv/put with body
-- {"key":"<base64>","value":"<base64>"} (the gateway takes bytes fields as standard base64).
--
-- The same key space and value size as strong_put.lua: keys are the 8 bytes `k` and 7
-- digits, drawn uniformly from the first KEYS keys (`k0000000`..`k0009999` by default),
-- base64-encoded by the small encoder below (12 characters). Values are 256 bytes,
-- different on every request, and are generated directly as base64 text rather than encoded:
-- 344 characters whose decoding is 256 bytes, namely the thread's id (2 base64 digits) and a
-- per-thread counter (6 digits), then 333 random alphabet characters taken at a random offset
-- from a pool each thread fills when it starts (8 + 333 = 341 characters), then one of
-- `AQgw` (its low four bits zero, so the last byte's encoding is canonical) and `==`: 85 full
-- groups of 4 characters (255 bytes) and one group of 2 data characters (1 byte). Encoding
-- real bytes per request would cost the load generator more CPU than strong_put.lua spends.
--
-- Settings, as wrk script arguments (after `--`) or environment variables:
--   keys=N                  BENCH_KEYS          key space (default 10000)
--   seed=N                  BENCH_SEED          base of each thread's random seed
--                                               (default the time; thread i uses base + i)
-- Usage (scripts/bench-wrk does this against a 3-member cluster's leader):
--   wrk -t2 -c64 -d8s --latency -s benches/wrk/etcd_put.lua http://127.0.0.1:2379 -- keys=10000
-- No response() callback: defining one makes wrk parse every response body.

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local POOL_BYTES = 1024
local FILL = 333 -- random characters after the 8-character id and counter
local LAST = "AQgw" -- base64 digits whose low four bits are zero

package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
local common = require("common")
setup = common.setup

local function digit(n)
  return B64:sub(n + 1, n + 1)
end

-- Standard base64 with padding (RFC 4648).
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = digit(c1) .. digit(c2) .. (b and digit(c3) or "=") .. (c and digit(c4) or "=")
  end
  return table.concat(out)
end

-- `width` base64 digits of `n` (its low 6 * width bits).
local function digits(n, width)
  local out = ""
  for _ = 1, width do
    out = digit(n % 64) .. out
    n = math.floor(n / 64)
  end
  return out
end

local keys, pool, headers, thread_digits
local counter = 0

function init(args)
  local tid = thread_id or 0
  keys = common.keys(args)
  common.seed(args, tid)
  local chars = {}
  for i = 1, POOL_BYTES do
    chars[i] = digit(math.random(0, 63))
  end
  pool = table.concat(chars)
  thread_digits = digits(tid % 4096, 2)
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local key = base64(string.format("k%07d", math.random(0, keys - 1)))
  local offset = math.random(1, POOL_BYTES - FILL + 1)
  local last = math.random(1, 4)
  local value = thread_digits
    .. digits(counter % 68719476736, 6) -- 64^6: unique for 68.7 billion requests per thread
    .. pool:sub(offset, offset + FILL - 1)
    .. LAST:sub(last, last)
    .. "=="
  return wrk.format("POST", "/v3/kv/put", headers, '{"key":"' .. key .. '","value":"' .. value .. '"}')
end
