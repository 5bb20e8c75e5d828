-- include: _queue.lua
-- KEYS: source, target. ARGV: now, limit, last seq to move ('' = the source's last seq, read
-- now), target name. Moves up to `limit` messages of the source in send order, whatever
-- their state, among those sent up to that seq. Returns {moved, last seq}: the caller passes
-- the last seq to the next batch, so a redrive in batches moves what the source held when it
-- began and no more.
local src, dst = queue(1), queue(1 + #QUEUE_PARTS)
local last = ARGV[3]
if last == '' then last = redis.call('GET', src.seq) or '0' end
local slots = redis.call('ZRANGEBYSCORE', src.order, '-inf', last, 'LIMIT', 0, ARGV[2])
if #slots > 0 then
  move(src, slots, dst, ARGV[1])
  wake(ARGV[4])
end
return {#slots, last}
