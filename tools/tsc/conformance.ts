// The declarations (www/sdk/rtcserver.d.ts) against the module (www/sdk/rtcserver.js):
// build/impl/ holds what TypeScript infers from the module itself (tsconfig.impl.json),
// and every line below fails to compile when the two disagree.
import type * as Decl from "../../www/sdk/rtcserver.js";
import type * as Impl from "./build/impl/sdk/rtcserver.js";

/** `true` only when A and B are the same set (of names). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** A class's API without its internals (members named _like_this). */
type Public<T> = { [K in keyof T as K extends `_${string}` ? never : K]: T[K] };

// The same exports, no more and no fewer.
export const sameExports: Same<keyof typeof Impl, keyof typeof Decl> = true;

// Room: the same public members, and each of the module's fits its declaration
// (the module's inferred types are looser: `any` where JSDoc says nothing).
export const sameRoomMembers: Same<keyof Public<Impl.Room>, keyof Decl.Room> = true;
export const roomFits: Decl.Room = null as unknown as Impl.Room;
type Statics = "create" | "join" | "version";
export const sameRoomStatics: Same<
  Exclude<keyof typeof Impl.Room, "prototype">,
  Exclude<keyof typeof Decl.Room, "prototype">
> = true;
export const roomStaticsFit: Pick<typeof Decl.Room, Statics> = null as unknown as typeof Impl.Room;

// The errors: the same fields; the declarations narrow name and reason to literals,
// so here the declaration must fit the module's wider type.
export const sameRoomFull: Same<keyof Impl.RoomFullError, keyof Decl.RoomFullError> = true;
export const roomFullFits: Impl.RoomFullError = null as unknown as Decl.RoomFullError;
export const roomFullMade: typeof Impl.RoomFullError = null as unknown as typeof Decl.RoomFullError;
export const sameNoSuchRoom: Same<keyof Impl.NoSuchRoomError, keyof Decl.NoSuchRoomError> = true;
export const noSuchRoomFits: Impl.NoSuchRoomError = null as unknown as Decl.NoSuchRoomError;
export const noSuchRoomMade: typeof Impl.NoSuchRoomError = null as unknown as typeof Decl.NoSuchRoomError;
export const sameMedia: Same<keyof Impl.MediaPermissionError, keyof Decl.MediaPermissionError> = true;
export const mediaFits: Impl.MediaPermissionError = null as unknown as Decl.MediaPermissionError;
export const mediaMade: typeof Impl.MediaPermissionError =
  null as unknown as typeof Decl.MediaPermissionError;
export const sameAuth: Same<keyof Impl.AuthError, keyof Decl.AuthError> = true;
export const authFits: Impl.AuthError = null as unknown as Decl.AuthError;
export const authMade: typeof Impl.AuthError = null as unknown as typeof Decl.AuthError;

export const versionFits: typeof Decl.VERSION = null as unknown as typeof Impl.VERSION;
