-- What the wrk scripts of this directory share: thread numbering, settings and the key space.
-- A script loads it with
--   package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
--   local common = require("common")
local common = {}

-- Thread numbers, handed out in the main script state (setup runs there, once per thread):
-- each thread reads its own as the global `thread_id`.
local next_thread = 0
function common.setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

-- A setting from the script arguments (`name=value` after `--`), else the environment
-- variable `env`, else `default`.
function common.setting(args, name, env, default)
  for _, arg in ipairs(args or {}) do
    local k, v = arg:match("^([%w_]+)=(.*)$")
    if k == name then
      return v
    end
  end
  local v = os.getenv(env)
  if v ~= nil and v ~= "" then
    return v
  end
  return default
end

-- The key space (keys=N / BENCH_KEYS, default 10000): keys are `k` and 7 digits.
function common.keys(args)
  local keys = tonumber(common.setting(args, "keys", "BENCH_KEYS", "10000"))
  if keys == nil or keys < 1 or keys > 10000000 then
    error("keys must be 1..10000000 (keys are `k` and 7 digits)")
  end
  return keys
end

-- Seeds this thread's random sequence (seed=N / BENCH_SEED, default the time; thread i uses
-- its own sequence, as thread states share nothing).
function common.seed(args, tid)
  local seed = tonumber(common.setting(args, "seed", "BENCH_SEED", "")) or os.time()
  math.randomseed(seed + 7919 * (tid + 1))
  for _ = 1, 10 do
    math.random() -- LuaJIT's first draws after seeding are poorly mixed
  end
end

return common
