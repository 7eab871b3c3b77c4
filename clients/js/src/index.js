// Chorus client SDK: see ../README.md.
export { ChorusError, Client, connect, randomId, SUBPROTOCOL } from "./client.js";
export { CLOSE_CODES, closeCodeInfo } from "./codes.js";
export { Room } from "./room.js";
