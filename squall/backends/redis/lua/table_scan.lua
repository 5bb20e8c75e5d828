-- KEYS: items, keys. ARGV: min, max, limit. Returns key, stored text, key, stored text...
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('HGET', KEYS[1], key)
end
return out
