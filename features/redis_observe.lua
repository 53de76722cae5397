-- Reads the features of one entity as they stood strictly before an event
-- and records the event: the Redis half of features.Redis.Observe. It
-- mirrors features.Memory exactly; the conformance tests compare both.
--
-- KEYS[1] log:  ZSET event id -> ts, every event that touched the entity
-- KEYS[2] data: HASH event id -> cmsgpack {seq, ts, {feature = value}}
-- KEYS[3] sum:  HASH of summaries: seq counter, newest ts, kept window,
--               ttl, and per feature n:<f> newest recorded ts, f:<f> first
--               position (seen, age), l:<f> latest positions (since_last)
-- ARGV: id, ts (ms), ttl (s), keep (ms: the id memory), then per item:
--       name, kind, window (ms), read (0/1), record (0/1), num, of
-- Returns one string per item: "" for nil, "0"/"1" for seen, a number.
local log, data, sum = KEYS[1], KEYS[2], KEYS[3]
local id, ts, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local SINCE_LAST_DEPTH = 16

local items = {}
for i = 5, #ARGV, 7 do
  items[#items + 1] = {
    name = ARGV[i], kind = ARGV[i + 1], window = tonumber(ARGV[i + 2]),
    read = ARGV[i + 3] == '1', record = ARGV[i + 4] == '1',
    num = tonumber(ARGV[i + 5]), of = ARGV[i + 6],
  }
end

local function before(ats, aseq, bts, bseq)
  return ats < bts or (ats == bts and aseq < bseq)
end

local function num(v)
  return string.format('%.17g', v)
end

-- Lua's unpack has a stack limit: long lists go in slices.
local function each_slice(list, fn)
  for i = 1, #list, 1000 do
    fn(unpack(list, i, math.min(i + 999, #list)))
  end
end

-- The summary is read once and written back once.
local S, dirty = {}, {}
local raw = redis.call('HGETALL', sum)
for i = 1, #raw, 2 do S[raw[i]] = raw[i + 1] end
local function set(k, v)
  S[k] = v
  dirty[k] = true
end

-- The event's place in history: a retry keeps its first delivery's.
local seq, retry
local prev = redis.call('HGET', data, id)
if prev then
  local r = cmsgpack.unpack(prev)
  seq, ts, retry = r[1], r[2], true
else
  seq, retry = (tonumber(S.seq) or 0) + 1, false
  set('seq', string.format('%d', seq))
end

-- Windowed reads share one range scan over the widest window read.
local widest = 0
for _, it in ipairs(items) do
  if it.read and it.window > 0 then widest = math.max(widest, it.window) end
end
local hist = {}
if widest > 0 then
  -- Ids only: each record holds its own time, and formatting every score
  -- into the reply (WITHSCORES) costs more than the range itself.
  local ids = redis.call('ZRANGEBYSCORE', log, '(' .. num(ts - widest), num(ts))
  each_slice(ids, function(...)
    for _, rec in ipairs(redis.call('HMGET', data, ...)) do
      if rec then
        local e = cmsgpack.unpack(rec)
        if before(e[2], e[1], ts, seq) then hist[#hist + 1] = e end
      end
    end
  end)
  -- The range comes sorted by time, ties by id: only a run of events
  -- sharing a millisecond needs sorting (by seq). Sorting the runs alone
  -- spares a busy key a general sort of its whole window on every read,
  -- and stays n log n when a producer stamps whole seconds.
  local i, n = 1, #hist
  while i < n do
    local j = i
    while j < n and hist[j + 1][2] == hist[i][2] do j = j + 1 end
    if j > i then
      local run = {}
      for k = i, j do run[#run + 1] = hist[k] end
      table.sort(run, function(a, b) return a[1] < b[1] end)
      for k = i, j do hist[k] = run[k - i + 1] end
    end
    i = j + 1
  end
end

local out = {}
for i, it in ipairs(items) do
  local v = ''
  if it.read then
    local k = it.kind
    if k == 'seen' or k == 'age' then
      local f = S['f:' .. it.name]
      local fts, fseq
      if f then
        local a, b = string.match(f, '^(-?%d+):(%d+)$')
        fts, fseq = tonumber(a), tonumber(b)
      end
      local seenBefore = f and before(fts, fseq, ts, seq)
      if k == 'seen' then
        v = seenBefore and '1' or '0'
      else
        v = seenBefore and num((ts - fts) / 1000) or '0'
      end
    elseif k == 'since_last' then
      local l = S['l:' .. it.name]
      local bts, bseq
      if l then
        for a, b in string.gmatch(l, '(-?%d+):(%d+)') do
          local pts, pseq = tonumber(a), tonumber(b)
          if before(pts, pseq, ts, seq) and (not bts or before(bts, bseq, pts, pseq)) then
            bts, bseq = pts, pseq
          end
        end
      end
      if bts then v = num((ts - bts) / 1000) end
    else
      -- History older than the feature's window from its newest recorded
      -- event is gone in the memory store; leave it out here too.
      local from = ts - it.window
      local newest = tonumber(S['n:' .. it.name] or '')
      if newest and newest - it.window > from then from = newest - it.window end
      local count, total, mx, distinct, nd = 0, 0, nil, {}, 0
      for _, e in ipairs(hist) do
        local x = e[3][it.name]
        if x ~= nil and e[2] > from then
          count = count + 1
          if k == 'sum' or k == 'avg' then
            total = total + x
          elseif k == 'max' then
            if mx == nil or x > mx then mx = x end
          elseif k == 'distinct' and not distinct[x] then
            distinct[x] = true
            nd = nd + 1
          end
        end
      end
      if k == 'count' then v = num(count)
      elseif k == 'sum' then v = num(total)
      elseif k == 'avg' then if count > 0 then v = num(total / count) end
      elseif k == 'max' then if mx ~= nil then v = num(mx) end
      elseif k == 'distinct' then v = num(nd)
      end
    end
  end
  out[i] = v
end

if retry then return out end -- nothing changed but nothing to write either

-- Record the event.
local vals = {}
local newest = tonumber(S.newest or '') or ts
if ts > newest then newest = ts end
local kept = math.max(keep, tonumber(S.w or '0'))
for _, it in ipairs(items) do
  if it.record then
    local k, name = it.kind, it.name
    if k == 'seen' or k == 'age' then
      local f = S['f:' .. name]
      local a, b
      if f then a, b = string.match(f, '^(-?%d+):(%d+)$') end
      if not f or before(ts, seq, tonumber(a), tonumber(b)) then
        set('f:' .. name, string.format('%d:%d', ts, seq))
      end
    else
      local n = tonumber(S['n:' .. name] or '')
      if not n or ts > n then set('n:' .. name, string.format('%d', ts)) end
      if k == 'since_last' then
        local list = {}
        local l = S['l:' .. name]
        if l then
          for a, b in string.gmatch(l, '(-?%d+):(%d+)') do list[#list + 1] = {tonumber(a), tonumber(b)} end
        end
        list[#list + 1] = {ts, seq}
        table.sort(list, function(x, y) return before(x[1], x[2], y[1], y[2]) end)
        local parts = {}
        for j = math.max(1, #list - SINCE_LAST_DEPTH + 1), #list do
          parts[#parts + 1] = string.format('%d:%d', list[j][1], list[j][2])
        end
        set('l:' .. name, table.concat(parts, ','))
      else
        if it.window > kept then kept = it.window end
        if k == 'count' then vals[name] = true
        elseif k == 'distinct' then vals[name] = it.of
        else vals[name] = it.num end
      end
    end
  end
end
redis.call('HSET', data, id, cmsgpack.pack({seq, ts, vals}))
redis.call('ZADD', log, ts, id)
set('newest', string.format('%d', newest))
set('w', string.format('%d', kept))

-- Forget what no future event can see. The oldest time in the log is
-- kept in the summary so most events skip the range scan.
local cut = newest - kept
local oldest = tonumber(S.oldest or '')
if not oldest or ts < oldest then oldest = ts end
if oldest <= cut then
  local old = redis.call('ZRANGEBYSCORE', log, '-inf', num(cut))
  if #old > 0 then
    each_slice(old, function(...) redis.call('HDEL', data, ...) end)
    redis.call('ZREMRANGEBYSCORE', log, '-inf', num(cut))
  end
  local first = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  oldest = tonumber(first[2]) or ts
end
set('oldest', string.format('%d', oldest))

-- Time to live: set on the first event and refreshed once an hour of
-- event time (or when a feature needs longer), not on every event.
local stored = tonumber(S.ttl or '0')
local refreshed = tonumber(S.ttl_at or '')
if ttl > stored or not refreshed or ts >= refreshed + 3600000 or ts < refreshed then
  ttl = math.max(ttl, stored)
  set('ttl', string.format('%d', ttl))
  set('ttl_at', string.format('%d', ts))
  redis.call('EXPIRE', log, ttl)
  redis.call('EXPIRE', data, ttl)
  redis.call('EXPIRE', sum, ttl)
end
local kv = {}
for k in pairs(dirty) do
  kv[#kv + 1] = k
  kv[#kv + 1] = S[k]
end
redis.call('HSET', sum, unpack(kv))
return out
